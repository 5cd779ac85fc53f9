// The subset of JSON Schema the connector configs use, resolved into field
// descriptions a form can draw and a validator can check.
import type { JsonSchema } from "./types";

export type EnumOption = { value: string; description?: string };

export type Field =
  | { kind: "const"; value: unknown }
  | { kind: "string"; secret: boolean }
  | { kind: "number"; integer: boolean }
  | { kind: "boolean" }
  | { kind: "enum"; options: EnumOption[] }
  | { kind: "stringList" }
  | { kind: "list"; item: JsonSchema }
  | { kind: "object"; properties: [string, JsonSchema][]; required: string[] }
  | { kind: "map"; value: JsonSchema }
  | { kind: "unknown" };

/** Follows `$ref`s (`#/$defs/Name`) against the root schema. */
export function deref(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let s = schema;
  for (let i = 0; i < 32 && s.$ref; i++) {
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(s.$ref);
    const defs = (m && (root[m[1]] as Record<string, JsonSchema> | undefined)) ?? undefined;
    const target = m && defs ? defs[m[2]] : undefined;
    if (!target) break;
    // Keywords beside a $ref (description, default) win over the target's.
    const { $ref: _ignored, ...rest } = s;
    void _ignored;
    s = { ...target, ...rest };
  }
  return s;
}

/** The schema with `null` alternatives removed: `anyOf [X, null]` and
 * `type: [T, "null"]` become X and T. */
export function nonNull(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let s = deref(schema, root);
  if (s.anyOf) {
    const alts = s.anyOf.filter((a) => a.type !== "null");
    if (alts.length === 1) {
      const { anyOf: _a, ...rest } = s;
      void _a;
      s = { ...deref(alts[0], root), ...rest };
    }
  }
  if (Array.isArray(s.type)) {
    const types = s.type.filter((t) => t !== "null");
    s = { ...s, type: types.length === 1 ? types[0] : types };
  }
  return s;
}

function primaryType(s: JsonSchema): string | undefined {
  return Array.isArray(s.type) ? s.type[0] : s.type;
}

export function enumOptions(s: JsonSchema, root: JsonSchema): EnumOption[] | null {
  if (Array.isArray(s.enum)) return s.enum.map((v) => ({ value: String(v) }));
  if (s.oneOf && s.oneOf.length > 0) {
    const alts = s.oneOf.map((a) => deref(a, root));
    if (alts.every((a) => a.const !== undefined)) {
      return alts.map((a) => ({ value: String(a.const), description: a.description }));
    }
  }
  return null;
}

export function classify(schema: JsonSchema, root: JsonSchema): Field {
  const s = nonNull(schema, root);
  if (s.const !== undefined) return { kind: "const", value: s.const };
  const options = enumOptions(s, root);
  if (options) return { kind: "enum", options };
  const t = primaryType(s);
  if (t === "string") return { kind: "string", secret: s["x-secret"] === true };
  if (t === "integer" || t === "number") return { kind: "number", integer: t === "integer" };
  if (t === "boolean") return { kind: "boolean" };
  if (t === "array" && s.items) {
    const item = nonNull(s.items, root);
    const itemField = classify(item, root);
    if (itemField.kind === "string" || itemField.kind === "enum") return { kind: "stringList" };
    return { kind: "list", item: s.items };
  }
  if (t === "object" || s.properties) {
    if (s.properties) {
      return { kind: "object", properties: Object.entries(s.properties), required: s.required ?? [] };
    }
    if (s.additionalProperties && typeof s.additionalProperties === "object") {
      return { kind: "map", value: s.additionalProperties };
    }
  }
  return { kind: "unknown" };
}

/** A readable label from a field name: `batch_rows` -> `Batch rows`. */
export function labelOf(name: string, schema?: JsonSchema): string {
  if (schema?.title) return schema.title;
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function isEmpty(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    v === "" ||
    (Array.isArray(v) && v.length === 0)
  );
}

/** Errors by field path (`tables.0.name`); empty when valid. */
export type Errors = Record<string, string>;

export function validate(schema: JsonSchema, value: unknown, root: JsonSchema = schema): Errors {
  const errors: Errors = {};
  check(schema, value, root, "", true, errors);
  return errors;
}

function join(path: string, key: string | number): string {
  return path ? `${path}.${key}` : String(key);
}

function check(
  schema: JsonSchema,
  value: unknown,
  root: JsonSchema,
  path: string,
  required: boolean,
  errors: Errors,
): void {
  const s = nonNull(schema, root);
  const field = classify(s, root);
  if (isEmpty(value)) {
    if (required && field.kind !== "object" && field.kind !== "const") {
      errors[path] = field.kind === "list" || field.kind === "stringList" ? "Add at least one." : "Required.";
      return;
    }
    if (field.kind !== "object") return;
  }
  switch (field.kind) {
    case "string": {
      const v = String(value);
      if (s.minLength !== undefined && v.length < s.minLength)
        errors[path] = `At least ${s.minLength} character${s.minLength === 1 ? "" : "s"}.`;
      else if (s.maxLength !== undefined && v.length > s.maxLength)
        errors[path] = `At most ${s.maxLength} character${s.maxLength === 1 ? "" : "s"}.`;
      else if (s.pattern && !new RegExp(s.pattern).test(v))
        errors[path] = field.secret
          ? "Use a reference: ${env:NAME} or ${keyring:service/account}."
          : `Doesn't match the expected form (${s.pattern}).`;
      return;
    }
    case "number": {
      const n = typeof value === "number" ? value : Number(value);
      if (!Number.isFinite(n)) errors[path] = "Enter a number.";
      else if (field.integer && !Number.isInteger(n)) errors[path] = "Enter a whole number.";
      else if (s.minimum !== undefined && n < s.minimum) errors[path] = `At least ${s.minimum}.`;
      else if (s.maximum !== undefined && n > s.maximum) errors[path] = `At most ${s.maximum}.`;
      return;
    }
    case "enum": {
      if (!field.options.some((o) => o.value === String(value)))
        errors[path] = `One of: ${field.options.map((o) => o.value).join(", ")}.`;
      return;
    }
    case "stringList":
    case "list": {
      const arr = Array.isArray(value) ? value : [];
      if (s.minItems !== undefined && arr.length < s.minItems)
        errors[path] = s.minItems === 1 ? "Add at least one." : `Add at least ${s.minItems}.`;
      if (field.kind === "list")
        arr.forEach((item, i) => check(field.item, item, root, join(path, i), true, errors));
      return;
    }
    case "object": {
      const obj = (value && typeof value === "object" ? value : {}) as Record<string, unknown>;
      for (const [name, prop] of field.properties) {
        check(prop, obj[name], root, join(path, name), field.required.includes(name), errors);
      }
      return;
    }
    default:
      return;
  }
}
