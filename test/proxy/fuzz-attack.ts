/**
 * One fuzz connection to a proxy on 127.0.0.1, shared by the SOCKS5 and the HTTP live fuzz: write
 * the input in chunks cut where `int` says, then FIN, reset or wait; resolves once the connection
 * is closed (at most ~800 ms after the input, when the proxy holds a tunnel open).
 */

/** How {@link attack} sends its input. */
export interface AttackOptions {
  readonly ending: "fin" | "reset" | "wait";
  /** Number of writes the input is cut into. */
  readonly chunks: number;
  /** Sleep 1-5 ms between writes. Default false. */
  readonly slow?: boolean;
  /** The fuzz's seeded `Math.floor(rand() * n)`, so cuts replay with the seed. */
  readonly int: (n: number) => number;
}

/** Sends `input` to the proxy on `port`; see the module comment. */
export function attack(port: number, input: Uint8Array, opts: AttackOptions): Promise<void> {
  const { ending, chunks, slow = false, int } = opts;
  return new Promise((resolve) => {
    const cuts = Array.from({ length: chunks - 1 }, () => int(input.length + 1)).sort((a, b) => a - b);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        resolve();
      }
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        async open(s) {
          let at = 0;
          for (const cut of [...cuts, input.length]) {
            if (cut > at) s.write(input.subarray(at, cut));
            at = Math.max(at, cut);
            if (slow) await Bun.sleep(1 + int(5));
          }
          if (ending === "fin") s.shutdown();
          if (ending === "reset") s.terminate();
          setTimeout(() => s.terminate(), 800); // a CONNECT that succeeded would otherwise stay open
        },
        data() {},
        end(s) {
          s.end();
        },
        close: finish,
        connectError: finish,
      },
    }).catch(finish);
  });
}

/** One input with how to send it. */
export interface AttackCase {
  readonly input: Uint8Array;
  readonly ending: AttackOptions["ending"];
  readonly chunks: number;
  readonly slow?: boolean;
}

/** Sends every case to the proxy on `port`, `concurrency` connections at a time, in order. */
export async function attackAll(port: number, cases: readonly AttackCase[], opts: { readonly concurrency: number; readonly int: (n: number) => number }): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        await attack(port, c.input, { ending: c.ending, chunks: c.chunks, slow: c.slow, int: opts.int });
      }
    }),
  );
}
