// A form drawn from a connector's JSON Schema: required fields, help text
// from descriptions, validation as you type.
import { useId, useState } from "react";
import { classify, isEmpty, labelOf, nonNull, validate, type Errors } from "../schema";
import type { JsonSchema } from "../types";

type Props = {
  schema: JsonSchema;
  /** The schema holding `$defs`; the schema itself by default. */
  root?: JsonSchema;
  value: Record<string, unknown>;
  onChange: (value: Record<string, unknown>) => void;
  /** Show every error, touched or not (after an attempt to go on). */
  showAll?: boolean;
  /** Top-level fields not drawn (set elsewhere). */
  hide?: string[];
  /** Prefix of data-testid attributes. */
  testid?: string;
  /** Keeps a secret in the OS keyring; returns the reference to write. */
  onStoreSecret?: (name: string, value: string) => Promise<string>;
};

type Ctx = {
  root: JsonSchema;
  errors: Errors;
  visible: (path: string) => boolean;
  touch: (path: string) => void;
  testid: string;
  onStoreSecret?: (name: string, value: string) => Promise<string>;
};

export function SchemaForm({ schema, root, value, onChange, showAll, hide, testid = "field", onStoreSecret }: Props) {
  const [touched, setTouched] = useState<Set<string>>(() => new Set());
  const rootSchema = root ?? schema;
  const errors = validate(schema, value, rootSchema);
  const ctx: Ctx = {
    root: rootSchema,
    errors,
    visible: (p) => showAll === true || touched.has(p),
    touch: (p) => setTouched((t) => (t.has(p) ? t : new Set(t).add(p))),
    testid,
    onStoreSecret,
  };
  const s = nonNull(schema, rootSchema);
  const props = Object.entries(s.properties ?? {}).filter(([k]) => !hide?.includes(k));
  return (
    <div className="schema-form">
      {props.map(([name, prop]) => (
        <FieldView
          key={name}
          ctx={ctx}
          name={name}
          path={name}
          schema={prop}
          required={(s.required ?? []).includes(name)}
          value={value[name]}
          onChange={(v) => onChange(setKey(value, name, v))}
        />
      ))}
    </div>
  );
}

function setKey(obj: Record<string, unknown>, key: string, v: unknown): Record<string, unknown> {
  const next = { ...obj };
  if (isEmpty(v)) delete next[key];
  else next[key] = v;
  return next;
}

type FieldProps = {
  ctx: Ctx;
  name: string;
  path: string;
  schema: JsonSchema;
  required: boolean;
  value: unknown;
  onChange: (v: unknown) => void;
};

function FieldView(props: FieldProps) {
  const { ctx, name, path, schema, required, value, onChange } = props;
  const id = useId();
  const s = nonNull(schema, ctx.root);
  const field = classify(s, ctx.root);
  if (field.kind === "const" || field.kind === "unknown") return null;
  const tid = `${ctx.testid}-${path}`;
  const error = ctx.visible(path) ? ctx.errors[path] : undefined;
  const help = s.description;
  const describedBy = [help ? `${id}-help` : "", error ? `${id}-err` : ""].filter(Boolean).join(" ") || undefined;
  const common = {
    id,
    "aria-invalid": error ? true : undefined,
    "aria-describedby": describedBy,
    "aria-required": required || undefined,
    "data-testid": tid,
  } as const;
  const placeholder = s.default !== undefined && typeof s.default !== "object" ? String(s.default) : undefined;
  const changed = (v: unknown) => {
    ctx.touch(path);
    onChange(v);
  };

  let control: React.ReactNode;
  switch (field.kind) {
    case "string":
      control = (
        <input
          {...common}
          type="text"
          value={value === undefined || value === null ? "" : String(value)}
          placeholder={placeholder ?? (field.secret ? "${env:NAME}" : undefined)}
          onChange={(e) => changed(e.target.value)}
          onBlur={() => ctx.touch(path)}
          autoComplete="off"
          spellCheck={false}
        />
      );
      if (field.secret) {
        control = (
          <SecretAware ctx={ctx} name={name} current={value} onStored={(ref) => changed(ref)}>
            {control}
          </SecretAware>
        );
      }
      break;
    case "number":
      control = (
        <input
          {...common}
          type="text"
          inputMode="numeric"
          value={value === undefined || value === null ? "" : String(value)}
          placeholder={placeholder}
          onChange={(e) => {
            const raw = e.target.value.trim();
            const n = Number(raw);
            changed(raw === "" ? undefined : Number.isFinite(n) ? n : raw);
          }}
          onBlur={() => ctx.touch(path)}
        />
      );
      break;
    case "boolean":
      control = (
        <input
          {...common}
          type="checkbox"
          checked={value === true || (value === undefined && s.default === true)}
          onChange={(e) => changed(e.target.checked)}
        />
      );
      break;
    case "enum":
      control = (
        <select {...common} value={value === undefined ? "" : String(value)} onChange={(e) => changed(e.target.value || undefined)}>
          <option value="">{placeholder !== undefined ? `Default (${placeholder})` : required ? "Choose…" : "—"}</option>
          {field.options.map((o) => (
            <option key={o.value} value={o.value} title={o.description}>
              {o.value}
            </option>
          ))}
        </select>
      );
      break;
    case "stringList":
      control = (
        <StringList common={common} value={value} placeholder="comma, separated" onChange={changed} onBlur={() => ctx.touch(path)} />
      );
      break;
    case "list":
      control = <ListEditor {...props} item={field.item} tid={tid} onChange={changed} />;
      break;
    case "map":
      control = <MapEditor tid={tid} value={value} onChange={changed} />;
      break;
    case "object":
      return (
        <fieldset className="nested" data-testid={tid}>
          <legend>
            {labelOf(name, s)}
            {required && <span className="req" aria-hidden> *</span>}
          </legend>
          {help && <p className="help" data-testid={`help-${tid}`}>{help}</p>}
          {field.properties.map(([k, prop]) => {
            const obj = (value && typeof value === "object" ? value : {}) as Record<string, unknown>;
            return (
              <FieldView
                key={k}
                ctx={ctx}
                name={k}
                path={`${path}.${k}`}
                schema={prop}
                required={field.required.includes(k)}
                value={obj[k]}
                onChange={(v) => changed(setKey(obj, k, v))}
              />
            );
          })}
        </fieldset>
      );
  }

  return (
    <div className={`field${error ? " invalid" : ""}`}>
      <label htmlFor={id}>
        {labelOf(name, s)}
        {required && <span className="req" title="Required"> *</span>}
      </label>
      {control}
      {help && (
        <p className="help" id={`${id}-help`} data-testid={`help-${tid}`}>
          {help}
        </p>
      )}
      {error && (
        <p className="error" id={`${id}-err`} role="alert" data-testid={`error-${tid}`}>
          {error}
        </p>
      )}
    </div>
  );
}

function SecretAware({
  ctx,
  name,
  current,
  onStored,
  children,
}: {
  ctx: Ctx;
  name: string;
  /** The field's text: a literal typed there is offered for the keyring. */
  current: unknown;
  onStored: (reference: string) => void;
  children: React.ReactNode;
}) {
  const [open, setOpen] = useState(false);
  const [secretValue, setSecretValue] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  if (!ctx.onStoreSecret) return <>{children}</>;
  const store = ctx.onStoreSecret;
  return (
    <div className="secret">
      <div className="row">
        {children}
        <button
          type="button"
          className="secondary"
          onClick={() => {
            if (!open && typeof current === "string" && !current.startsWith("${")) setSecretValue(current);
            setOpen((o) => !o);
          }}
        >
          Keep in keyring…
        </button>
      </div>
      {open && (
        <div className="row">
          <input
            type="password"
            className="secret-value"
            placeholder="the secret itself"
            aria-label={`${name} value`}
            value={secretValue}
            onChange={(e) => setSecretValue(e.target.value)}
          />
          <button
            type="button"
            onClick={async () => {
              try {
                const reference = await store(name, secretValue);
                onStored(reference);
                setSecretValue("");
                setOpen(false);
                setMessage(null);
              } catch (e) {
                const m = (e as { message?: string })?.message ?? String(e);
                setMessage(`${m} Use an environment reference instead, e.g. \${env:${name.toUpperCase()}}.`);
              }
            }}
          >
            Store
          </button>
        </div>
      )}
      {message && <p className="error">{message}</p>}
    </div>
  );
}

function StringList({
  common,
  value,
  placeholder,
  onChange,
  onBlur,
}: {
  common: Record<string, unknown>;
  value: unknown;
  placeholder: string;
  onChange: (v: unknown) => void;
  onBlur: () => void;
}) {
  const list = Array.isArray(value) ? (value as unknown[]).map(String) : [];
  const [raw, setRaw] = useState(list.join(", "));
  const parsed = raw
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  // Follow outside changes (e.g. a reset) without fighting the user's typing.
  const shown = parsed.join("\u0000") === list.join("\u0000") ? raw : list.join(", ");
  return (
    <input
      {...common}
      type="text"
      value={shown}
      placeholder={placeholder}
      onChange={(e) => {
        setRaw(e.target.value);
        onChange(
          e.target.value
            .split(",")
            .map((x) => x.trim())
            .filter(Boolean),
        );
      }}
      onBlur={onBlur}
      spellCheck={false}
    />
  );
}

function itemTitle(listName: string, entry: unknown, i: number): string {
  const name = entry && typeof entry === "object" ? (entry as Record<string, unknown>).name : undefined;
  return typeof name === "string" && name ? name : `${labelOf(listName)} ${i + 1}`;
}

function ListEditor(props: FieldProps & { item: JsonSchema; tid: string }) {
  const { ctx, path, item, value, onChange, tid } = props;
  const list = Array.isArray(value) ? (value as unknown[]) : [];
  const itemSchema = nonNull(item, ctx.root);
  return (
    <div className="list-editor" data-testid={tid}>
      {list.map((entry, i) => (
        <div className="list-item" key={i}>
          <FieldView
            ctx={ctx}
            name={`${labelOf(props.name)} ${i + 1}`}
            path={`${path}.${i}`}
            schema={{ ...itemSchema, title: itemTitle(props.name, entry, i), description: undefined }}
            required
            value={entry}
            onChange={(v) => onChange(list.map((x, j) => (j === i ? v : x)))}
          />
          <button
            type="button"
            className="secondary small"
            data-testid={`${tid}-remove-${i}`}
            onClick={() => onChange(list.filter((_, j) => j !== i))}
          >
            Remove
          </button>
        </div>
      ))}
      <button type="button" className="secondary small" data-testid={`${tid}-add`} onClick={() => onChange([...list, {}])}>
        Add
      </button>
    </div>
  );
}

function MapEditor({ tid, value, onChange }: { tid: string; value: unknown; onChange: (v: unknown) => void }) {
  const obj = (value && typeof value === "object" ? value : {}) as Record<string, unknown>;
  const [rows, setRows] = useState<[string, string][]>(() => Object.entries(obj).map(([k, v]) => [k, String(v)]));
  const push = (next: [string, string][]) => {
    setRows(next);
    const out: Record<string, string> = {};
    for (const [k, v] of next) if (k.trim()) out[k.trim()] = v;
    onChange(out);
  };
  return (
    <div className="map-editor" data-testid={tid}>
      {rows.map(([k, v], i) => (
        <div className="row" key={i}>
          <input aria-label="name" value={k} onChange={(e) => push(rows.map((r, j) => (j === i ? [e.target.value, r[1]] : r)))} />
          <span>=</span>
          <input aria-label="value" value={v} onChange={(e) => push(rows.map((r, j) => (j === i ? [r[0], e.target.value] : r)))} />
          <button type="button" className="secondary small" onClick={() => push(rows.filter((_, j) => j !== i))}>
            Remove
          </button>
        </div>
      ))}
      <button type="button" className="secondary small" data-testid={`${tid}-add`} onClick={() => push([...rows, ["", ""]])}>
        Add
      </button>
    </div>
  );
}
