#!/usr/bin/env bun
/** egressd entry point: argv goes to the CLI; nothing else lives here. */
import { main } from "./lib/cli/main.ts";

process.exitCode = await main(process.argv.slice(2));
