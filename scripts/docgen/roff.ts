/** roff for man(7): escaping, and `code` spans in help text turned into bold. */

/** Escapes text for a roff line: backslashes, minus signs, and a leading `.` or `'`. */
export function escape(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .replace(/^([.'])/, "\\&$1");
}

/** Escapes prose and makes `code` spans bold. */
export function prose(text: string): string {
  return text
    .split(/(`[^`]+`)/)
    .map((part) => (part.startsWith("`") && part.endsWith("`") && part.length > 2 ? `\\fB${escape(part.slice(1, -1))}\\fR` : escape(part)))
    .join("")
    .replace(/^([.'])/, "\\&$1");
}

/** A preformatted block (no filling, no adjusting). */
export function pre(lines: string[]): string {
  return [".PP", ".nf", ".RS 4", ...lines.map((l) => escape(l) || "\\&"), ".RE", ".fi"].join("\n");
}
