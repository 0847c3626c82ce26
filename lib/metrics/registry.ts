/**
 * The registry: the ordered list of collectors one scrape asks, and the rendering of their answers.
 *
 * A scrape asks every collector at once. A collector that throws, times out or returns something
 * the format would reject is left out of that scrape and logged, and the others are still served:
 * a failing `wg show` must not hide the leak-guard counters, which matter most exactly then. When
 * {@link RegistryOptions.successMetric} is set, a gauge says which collectors answered.
 */
import { silentLogger, type Logger } from "../log/logger.ts";
import { CollectorError, InvalidMetricError } from "./errors.ts";
import { renderFamilies, validateFamily, type MetricFamily } from "./exposition.ts";

/** Anything that produces metric families at scrape time. */
export interface Collector {
  /** Names the collector in logs and in the success gauge; unique within a registry. */
  readonly name: string;
  /** The families as of now. May be async (a `wg show` dump); must not mutate what it returned before. */
  collect(): Iterable<MetricFamily> | Promise<Iterable<MetricFamily>>;
}

/** Options for {@link Registry}. */
export interface RegistryOptions {
  /** Where collector failures are reported. Default {@link silentLogger}. */
  log?: Logger;
  /** How long one collector may take before it counts as failed, in ms. Default 5000. */
  collectTimeoutMs?: number;
  /**
   * Name of a gauge `<name>{collector="..."}` that is 1 when that collector answered this scrape
   * and 0 when it failed (node_exporter's `node_scrape_collector_success` pattern). Default: none.
   */
  successMetric?: string;
}

/** An ordered set of collectors; families render in registration order. */
export class Registry {
  readonly #collectors = new Map<string, Collector>();
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #successMetric: string | undefined;

  /** See {@link RegistryOptions} for defaults. */
  constructor(opts: RegistryOptions = {}) {
    this.#log = opts.log ?? silentLogger;
    this.#timeoutMs = opts.collectTimeoutMs ?? 5000;
    this.#successMetric = opts.successMetric;
  }

  /** Adds a collector and returns it. Throws {@link InvalidMetricError} if its name is taken. */
  register<C extends Collector>(collector: C): C {
    if (this.#collectors.has(collector.name)) throw new InvalidMetricError(collector.name, "collector registered twice");
    this.#collectors.set(collector.name, collector);
    return collector;
  }

  /** Removes a collector by name; true if it was there. */
  unregister(name: string): boolean {
    return this.#collectors.delete(name);
  }

  /** Runs every collector and returns their families, failed collectors left out. Never throws for a collector. */
  async collect(): Promise<MetricFamily[]> {
    const collectors = [...this.#collectors.values()];
    const results = await Promise.all(collectors.map((c) => this.#collectOne(c)));
    const out: MetricFamily[] = [];
    const seen = new Set<string>();
    const success: [string, number][] = [];
    results.forEach((families, i) => {
      const c = collectors[i]!;
      let ok = families !== null;
      if (families) {
        const clash = families.find((f) => seen.has(f.name));
        if (clash) {
          this.#fail(new CollectorError(c.name, `family ${clash.name} is already produced by another collector`));
          ok = false;
        } else {
          for (const f of families) seen.add(f.name);
          out.push(...families);
        }
      }
      success.push([c.name, ok ? 1 : 0]);
    });
    if (this.#successMetric !== undefined) {
      out.push({
        name: this.#successMetric,
        help: "Whether a collector answered this scrape (1) or failed and was left out (0).",
        type: "gauge",
        samples: success.map(([name, v]) => ({ name: this.#successMetric!, labels: [["collector", name]], value: v })),
      });
    }
    return out;
  }

  /** Runs every collector and renders the 0.0.4 text exposition. */
  async render(): Promise<string> {
    return renderFamilies(await this.collect());
  }

  async #collectOne(c: Collector): Promise<MetricFamily[] | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CollectorError(c.name, `no answer within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    try {
      const families = [...(await Promise.race([Promise.resolve().then(() => c.collect()), timeout]))];
      for (const f of families) validateFamily(f);
      return families;
    } catch (err) {
      this.#fail(err instanceof CollectorError ? err : new CollectorError(c.name, errorMessage(err), { cause: err }));
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  #fail(err: CollectorError): void {
    // An invalid family is a bug in egressd; a failed source is an operational condition.
    if (err.cause instanceof InvalidMetricError) this.#log.error("metrics collector produced invalid families", { collector: err.collector, err });
    else this.#log.warn("metrics collector failed", { collector: err.collector, err: err.message });
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
