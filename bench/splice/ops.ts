/**
 * What the splice forwarder (../splice-forwarder.ts) and its relay thread (worker.ts) tell each
 * other. A module of its own so that the main thread never loads the worker's module, whose body
 * opens libc and listens for messages.
 */

/** Commands on the command pipe. */
export const SpliceOp = { add: 1, abort: 2 } as const;

/** What the worker posts when a connection is over. */
export interface SpliceDone {
  readonly slot: number;
  /** Null for a clean end (both FINs forwarded) or an abort; else the errno name and the side it came from. */
  readonly error: { readonly code: string; readonly side: "client" | "target" } | null;
}

/** The first message to the worker. */
export interface SpliceInit {
  readonly cmdFd: number;
  readonly counters: SharedArrayBuffer;
  readonly pipeSize: number;
}
