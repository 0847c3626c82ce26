/**
 * The errors lib/metrics throws. Each carries the fields a caller needs to report it without
 * parsing the message.
 */

/** Base class of every lib/metrics error. */
export class MetricsError extends Error {
  override name = "MetricsError";
}

/**
 * A metric definition or a set of samples the exposition format would reject: a bad name, a
 * wrong label set, a duplicate registration or series. A programming error, never a runtime one.
 */
export class InvalidMetricError extends MetricsError {
  override name = "InvalidMetricError";
  /** The metric family concerned. */
  readonly metric: string;
  constructor(metric: string, problem: string) {
    super(`metric ${metric}: ${problem}`);
    this.metric = metric;
  }
}

/** A collector failed or timed out during a scrape; its families are left out of that scrape. */
export class CollectorError extends MetricsError {
  override name = "CollectorError";
  /** The collector's name, as in `egressd_scrape_collector_success{collector=...}`. */
  readonly collector: string;
  constructor(collector: string, message: string, options?: ErrorOptions) {
    super(`collector ${collector}: ${message}`, options);
    this.collector = collector;
  }
}

/** The metrics HTTP listener could not bind its address. */
export class ListenError extends MetricsError {
  override name = "ListenError";
  /** The address as `host:port`. */
  readonly address: string;
  /** The errno code (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`, ...), when the runtime gave one. */
  readonly code: string | undefined;
  constructor(address: string, options?: ErrorOptions) {
    const cause = options?.cause as { code?: unknown; message?: unknown } | undefined;
    const code = typeof cause?.code === "string" ? cause.code : undefined;
    super(`metrics listener ${address}: ${code ?? (typeof cause?.message === "string" ? cause.message : "bind failed")}`, options);
    this.address = address;
    this.code = code;
  }
}

/** A procfs file was missing a field this module reads, or held something else there. */
export class ProcfsError extends MetricsError {
  override name = "ProcfsError";
  /** The file, relative to the process directory or procfs root (`stat`, `limits`, ...). */
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`procfs ${file}: ${problem}`);
    this.file = file;
  }
}
