#!/usr/bin/env bun
/** egressd entry point: argv goes to the CLI; nothing else lives here. */
import { main } from "./lib/cli/main.ts";

// Exit explicitly: a stopped daemon may still hold timers or sockets that would keep the process alive.
process.exit(await main(process.argv.slice(2)));
