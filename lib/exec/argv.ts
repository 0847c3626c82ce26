/**
 * Rendering argv arrays for humans (logs, error messages, golden files).
 * Nothing here is ever handed to a shell: the runner passes argv arrays straight to exec.
 */

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** Quotes one word the way a POSIX shell would need it, so a logged command can be pasted. */
export function quoteWord(word: string): string {
  if (word !== "" && SAFE.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Renders argv as one shell-like line: `ip -4 rule add priority 5000 ...`. */
export function formatArgv(argv: readonly string[]): string {
  return argv.map(quoteWord).join(" ");
}
