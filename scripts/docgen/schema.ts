/**
 * Walks the zod config schema (lib/config/schema.ts) into a flat list of documented fields: the
 * dotted name, a type in words, the default as it would be written in the file, whether it is
 * required, and the `.describe()` text. Shared value types carry a `kind` in their metadata
 * (`duration`, `CIDR`, `ip:port`, ...).
 */
import { z } from "zod";
import { formatDuration } from "../../lib/config/duration.ts";

/** One field of the config file. */
export interface Field {
  /** `proxy.dns.mode`. */
  path: string;
  type: string;
  /** The default, as JSON the file could hold; undefined when there is none. */
  default?: string;
  required: boolean;
  /** Declared `.optional()`: may be left out, and has no default (e.g. `exit` when `exits` is used). */
  optional?: boolean;
  description: string;
  /** An object with fields of its own, listed after it. */
  section: boolean;
}

// zod keeps these in its internals; the generator needs the structure, not a parse.
type Any = z.ZodType & { _zod: { def: any }; minValue?: number | null; maxValue?: number | null; isInt?: boolean };

function kindOf(s: Any): string | undefined {
  const meta = z.globalRegistry.get(s) as { kind?: string } | undefined;
  if (meta?.kind) return meta.kind;
  const def = s._zod.def;
  if (def.type === "pipe") return kindOf(def.in);
  return undefined;
}

function typeOf(s: Any): string {
  const kind = kindOf(s);
  if (kind) return kind;
  const def = s._zod.def;
  switch (def.type) {
    case "string":
      return "string";
    case "boolean":
      return "boolean";
    case "number": {
      const int = s.isInt ? "integer" : "number";
      const lo = s.minValue, hi = s.maxValue;
      const finite = (n: number | null | undefined) => n !== null && n !== undefined && Number.isFinite(n) && Math.abs(n) < Number.MAX_SAFE_INTEGER;
      return finite(lo) && finite(hi) ? `${int}, ${lo} to ${hi}` : int;
    }
    case "enum":
      return `one of ${Object.values(def.entries as Record<string, string>).map((v) => `"${v}"`).join(", ")}`;
    case "array":
      return `list of ${typeOf(def.element)}`;
    case "object":
      return "object";
    case "record":
      return `object of ${typeOf(def.keyType)} to ${typeOf(def.valueType)}`;
    case "literal":
      return (def.values as unknown[]).map((v) => JSON.stringify(v)).join(" or ");
    case "union":
      return (def.options as Any[]).map(typeOf).join(" or ");
    case "pipe":
      return typeOf(def.in);
    case "nullable":
      return `${typeOf(def.innerType)} or null`;
    case "default":
    case "optional":
      return typeOf(def.innerType);
  }
  throw new Error(`docgen: no words for zod type "${def.type}"`);
}

function formatDefault(value: unknown, kind: string | undefined): string {
  if (kind === "duration" && typeof value === "number") return value === 0 ? "0" : JSON.stringify(formatDuration(value));
  if (kind === "fwmark" && typeof value === "number") return JSON.stringify(`0x${value.toString(16)}`);
  return JSON.stringify(value);
}

/** Every field of `schema`, depth first, sections before their fields. */
export function schemaFields(schema: z.ZodType, prefix = ""): Field[] {
  let s = schema as Any;
  // The root is a refined object: unwrap to its shape.
  while (s._zod.def.type !== "object") s = s._zod.def.innerType ?? s._zod.def.in;
  const out: Field[] = [];
  for (const [key, child] of Object.entries(s._zod.def.shape as Record<string, Any>)) {
    const path = prefix ? `${prefix}.${key}` : key;
    let inner = child;
    let description = child.description;
    let defaultValue: unknown;
    let hasDefault = false;
    let nullable = false;
    let optional = false;
    for (;;) {
      const def = inner._zod.def;
      if (def.type === "default") {
        hasDefault = true;
        defaultValue = def.defaultValue;
      } else if (def.type === "nullable") nullable = true;
      else if (def.type === "optional") optional = true;
      else break;
      inner = def.innerType;
      description ??= inner.description;
    }
    description ??= inner.description;
    if (!description) throw new Error(`docgen: config field ${path} has no .describe() text (lib/config/schema.ts)`);
    // A list of objects (`exits`) is a section too: its entries' fields follow, as `exits[].name`.
    const element = inner._zod.def.type === "array" ? (inner._zod.def.element as Any) : null;
    const list = element !== null && element._zod.def.type === "object";
    const section = inner._zod.def.type === "object" || list;
    const kind = kindOf(inner);
    const type = inner._zod.def.type === "object" ? "object" : typeOf(inner);
    const field: Field = { path, type: `${type}${nullable ? " or null" : ""}`, required: !hasDefault && !optional, ...(optional ? { optional } : {}), description, section };
    if (hasDefault && !(section && defaultValue !== null)) field.default = formatDefault(defaultValue, kind);
    out.push(field);
    if (list) out.push(...schemaFields(element, `${path}[]`));
    else if (section) out.push(...schemaFields(inner, path));
  }
  return out;
}
