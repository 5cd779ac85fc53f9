// New pipeline: source kind -> settings -> connection test -> tables ->
// transform and preview -> targets -> review -> save and run.
import { useEffect, useMemo, useState } from "react";
import * as backend from "../backend";
import { SchemaForm } from "../components/SchemaForm";
import { SqlEditor } from "../components/LazySqlEditor";
import { VirtualGrid } from "../components/VirtualGrid";
import { errorText } from "../errors";
import { fmtInt } from "../format";
import { join } from "../paths";
import { validate } from "../schema";
import { draftFromToml } from "../toml";
import type {
  CheckItem,
  DiscoveredTable,
  KindInfo,
  PipelineDraft,
  PreviewResult,
  Problem,
  RecentChange,
} from "../types";

export const STEPS = ["Source", "Settings", "Connection", "Tables", "Transform", "Targets", "Review", "Save & run"];

export const SAMPLE_KIND = "sample";

type TableChoice = { include: boolean; mode: string; columns: string[] };

type TransformState = { enabled: boolean; name: string; input: string; sql: string; lookups: string[] };

export type WizardState = {
  name: string;
  description: string;
  kind: string | null;
  folder: string;
  sourceName: string;
  source: Record<string, unknown>;
  sourceKind: string;
  targets: Record<string, Record<string, unknown>>;
  tables: DiscoveredTable[] | null;
  choices: Record<string, TableChoice>;
  transform: TransformState;
  /** `kind|folder` the source was last set up for (Back then Next keeps it). */
  prepared: string;
};

const initial: WizardState = {
  name: "shop",
  description: "",
  kind: null,
  folder: "",
  sourceName: "",
  source: {},
  sourceKind: "",
  targets: {},
  tables: null,
  choices: {},
  transform: { enabled: true, name: "", input: "", sql: "", lookups: [] },
  prepared: "",
};

export function pipelinePath(s: WizardState): string {
  return join(s.folder, `${s.name || "pipeline"}.toml`);
}

export function buildDraft(s: WizardState): PipelineDraft {
  const draft: PipelineDraft = {
    name: s.name,
    ...(s.description ? { description: s.description } : {}),
    sources: { [s.sourceName]: { kind: s.sourceKind, ...s.source } },
    targets: s.targets,
  };
  const t = s.transform;
  if (t.enabled && t.name && t.input && t.sql.trim()) {
    draft.transforms = {
      [t.name]: { input: t.input, sql: t.sql, ...(t.lookups.length ? { lookups: t.lookups } : {}) },
    };
  }
  return draft;
}

function quoteIdent(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export function defaultSql(columns: string[]): string {
  return `SELECT ${columns.length ? columns.map(quoteIdent).join(", ") : "*"}\nFROM source`;
}

function tableShortName(name: string): string {
  const parts = name.split(".");
  return parts[parts.length - 1];
}

type Props = {
  onRun: (path: string) => void;
};

export function Wizard({ onRun }: Props) {
  const [step, setStep] = useState(0);
  const [state, setState] = useState<WizardState>(initial);
  const [kinds, setKinds] = useState<KindInfo[] | null>(null);
  const [kindsError, setKindsError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [showAll, setShowAll] = useState(false);

  useEffect(() => {
    backend.connectorKinds().then(setKinds, (e) => setKindsError(errorText(e)));
    backend.defaultWorkspaceDir().then(
      (dir) => setState((s) => (s.folder ? s : { ...s, folder: dir })),
      () => undefined,
    );
  }, []);

  const update = (patch: Partial<WizardState>) => setState((s) => ({ ...s, ...patch }));
  const sourceKinds = kinds?.filter((k) => k.role === "source") ?? [];
  const targetKinds = kinds?.filter((k) => k.role === "target") ?? [];
  const kindInfo = (kind: string, role: "source" | "target") => kinds?.find((k) => k.kind === kind && k.role === role);

  const goto = (n: number) => {
    setError(null);
    setShowAll(false);
    setStep(n);
  };

  async function next() {
    setError(null);
    try {
      setBusy(true);
      if (step === 0) {
        if (!state.kind) throw new Error("Choose a source kind.");
        if (!state.folder.trim()) throw new Error("Choose a folder for the pipeline.");
        if (!/^[A-Za-z][A-Za-z0-9_-]{0,62}$/.test(state.name))
          throw new Error("The pipeline name starts with a letter and holds letters, digits, _ and -.");
        const prepared = `${state.kind}|${state.folder}`;
        if (state.prepared === prepared) {
          // Same source as before: keep everything entered since.
        } else if (state.kind === SAMPLE_KIND) {
          const info = await backend.createSample(state.folder);
          const draft = draftFromToml(info.text);
          const sourceName = info.sourceName in draft.sources ? info.sourceName : Object.keys(draft.sources)[0];
          const { kind, ...source } = draft.sources[sourceName] as Record<string, unknown>;
          const transforms = Object.entries(draft.transforms ?? {});
          setState((s) => ({
            ...s,
            prepared,
            description: typeof draft.description === "string" ? draft.description : "",
            sourceName,
            sourceKind: String(kind),
            source,
            targets: draft.targets,
            tables: null,
            choices: {},
            transform: transforms.length
              ? {
                  enabled: true,
                  name: transforms[0][0],
                  input: transforms[0][1].input,
                  sql: transforms[0][1].sql,
                  lookups: transforms[0][1].lookups ?? [],
                }
              : s.transform,
          }));
        } else {
          setState((s) => ({
            ...s,
            prepared,
            sourceKind: s.kind!,
            description: "",
            sourceName: s.kind!,
            source: {},
            tables: null,
            choices: {},
            targets: { warehouse: { kind: "duckdb", path: `${s.name}.duckdb`, inputs: [s.kind!] } },
            transform: initial.transform,
          }));
        }
      } else if (step === 1) {
        const info = kindInfo(state.sourceKind, "source");
        if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(state.sourceName))
          throw new Error("The source name starts with a letter and holds letters, digits and _.");
        if (info && Object.keys(validate(info.schema, { kind: state.sourceKind, ...state.source })).length) {
          setShowAll(true);
          throw new Error("Some fields need attention.");
        }
      } else if (step === 3) {
        applyChoices();
      } else if (step === 4) {
        applyTransformToTargets();
      } else if (step === 5) {
        for (const [name, t] of Object.entries(state.targets)) {
          const info = kindInfo(String(t.kind), "target");
          if (info && Object.keys(validate(info.schema, t)).length) {
            setShowAll(true);
            throw new Error(`Target ${name}: some fields need attention.`);
          }
          if (!Array.isArray(t.inputs) || t.inputs.length === 0) throw new Error(`Target ${name} receives nothing: tick an input.`);
        }
        if (Object.keys(state.targets).length === 0) throw new Error("Add a target.");
      }
      goto(step + 1);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  function applyChoices() {
    if (!state.tables) return;
    const existing = Array.isArray(state.source.tables) ? (state.source.tables as Record<string, unknown>[]) : [];
    const tables = state.tables
      .filter((t) => state.choices[t.name]?.include)
      .map((t) => {
        const prev = existing.find((e) => e.name === t.name) ?? { name: t.name };
        const mode = state.choices[t.name].mode;
        return mode ? { ...prev, mode } : prev;
      });
    if (tables.length === 0) throw new Error("Choose at least one table.");
    const transform = { ...state.transform };
    const included = tables.map((t) => `${state.sourceName}.${String(t.name)}`);
    if (!transform.input || !included.includes(transform.input)) {
      transform.input = included[0];
      transform.sql = "";
    }
    if (!transform.name) transform.name = `${tableShortName(String(tables[0].name))}_view`;
    if (!transform.sql) {
      const table = state.tables.find((t) => `${state.sourceName}.${t.name}` === transform.input);
      transform.sql = defaultSql(state.choices[table?.name ?? ""]?.columns ?? []);
    }
    setState((s) => ({ ...s, source: { ...s.source, tables }, transform }));
  }

  function applyTransformToTargets() {
    const t = state.transform;
    if (!t.enabled) return;
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(t.name)) throw new Error("The transform name starts with a letter and holds letters, digits and _.");
    if (!t.sql.trim()) throw new Error("Write the transform's SQL, or untick “Add a transform”.");
    setState((s) => {
      const targets: Record<string, Record<string, unknown>> = {};
      for (const [name, target] of Object.entries(s.targets)) {
        const inputs = Array.isArray(target.inputs) ? (target.inputs as string[]) : [];
        targets[name] = inputs.includes(t.name) ? target : { ...target, inputs: [...inputs, t.name] };
      }
      return { ...s, targets };
    });
  }

  const path = pipelinePath(state);
  const draft = useMemo(() => buildDraft(state), [state]);

  return (
    <section className="screen wizard" data-testid="wizard">
      <header className="screen-header">
        <h1>New pipeline</h1>
        <ol className="steps" aria-label="Steps">
          {STEPS.map((name, i) => (
            <li
              key={name}
              className={i === step ? "current" : i < step ? "done" : ""}
              aria-current={i === step ? "step" : undefined}
              data-testid={`step-${i}`}
            >
              <span className="num">{i + 1}</span> {name}
            </li>
          ))}
        </ol>
      </header>
      <div className="step-body" data-testid={`wizard-step-${STEPS[step].toLowerCase().replace(/[^a-z]+/g, "-")}`}>
        <h2>{STEPS[step]}</h2>
        {step === 0 && (
          <SourceStep state={state} update={update} kinds={sourceKinds} kindsError={kindsError} />
        )}
        {step === 1 && (
          <SettingsStep state={state} update={update} info={kindInfo(state.sourceKind, "source")} showAll={showAll} />
        )}
        {step === 2 && <ConnectionStep path={path} draft={draft} source={state.sourceName} />}
        {step === 3 && <TablesStep path={path} draft={draft} state={state} update={update} />}
        {step === 4 && <TransformStep path={path} draft={draft} state={state} update={update} />}
        {step === 5 && (
          <TargetsStep state={state} update={update} kinds={targetKinds} kindInfo={(k) => kindInfo(k, "target")} showAll={showAll} />
        )}
        {step === 6 && <ReviewStep path={path} draft={draft} />}
        {step === 7 && <SaveStep path={path} draft={draft} onRun={onRun} />}
      </div>
      {error && (
        <p className="error banner" role="alert" data-testid="wizard-error">
          {error}
        </p>
      )}
      <footer className="wizard-nav">
        <button type="button" className="secondary" disabled={step === 0 || busy} onClick={() => goto(step - 1)} data-testid="wizard-back">
          Back
        </button>
        {step < STEPS.length - 1 && (
          <button type="button" disabled={busy} onClick={next} data-testid="wizard-next">
            {busy ? "Working…" : "Next"}
          </button>
        )}
      </footer>
    </section>
  );
}

type StepProps = { state: WizardState; update: (p: Partial<WizardState>) => void };

function SourceStep({ state, update, kinds, kindsError }: StepProps & { kinds: KindInfo[]; kindsError: string | null }) {
  const options = [
    {
      kind: SAMPLE_KIND,
      title: "Bundled sample shop",
      description: "An online shop's customers, products and orders as files, written into the folder below.",
    },
    ...kinds,
  ];
  const pickFolder = async () => {
    const dir = await backend.pickFolder();
    if (dir) update({ folder: dir });
  };
  return (
    <div className="stack">
      <div className="field">
        <label htmlFor="wizard-name">Pipeline name</label>
        <input
          id="wizard-name"
          data-testid="wizard-name"
          value={state.name}
          onChange={(e) => update({ name: e.target.value })}
          spellCheck={false}
        />
        <p className="help">Letters, digits, _ and -. It names the pipeline's file, checkpoints and state.</p>
      </div>
      <div className="field">
        <label htmlFor="wizard-description">Description</label>
        <input
          id="wizard-description"
          data-testid="wizard-description"
          value={state.description}
          onChange={(e) => update({ description: e.target.value })}
          placeholder="What the pipeline is for (optional)"
        />
      </div>
      <div className="field">
        <label htmlFor="wizard-folder">Folder</label>
        <div className="row">
          <input
            id="wizard-folder"
            data-testid="wizard-folder"
            value={state.folder}
            onChange={(e) => update({ folder: e.target.value })}
            spellCheck={false}
          />
          <button type="button" className="secondary" onClick={pickFolder} data-testid="wizard-folder-browse">
            Browse…
          </button>
        </div>
        <p className="help">
          Where the pipeline file is saved; paths inside it are relative to this folder. The sample shop's files are
          written here too.
        </p>
      </div>
      <fieldset className="kinds">
        <legend>Source kind</legend>
        {kindsError && <p className="error">Connector kinds could not be loaded: {kindsError}</p>}
        {options.map((k) => (
          <label key={k.kind} className={`kind-card${state.kind === k.kind ? " selected" : ""}`} data-testid={`kind-${k.kind}`}>
            <input type="radio" name="kind" value={k.kind} checked={state.kind === k.kind} onChange={() => update({ kind: k.kind })} />
            <span>
              <strong>{k.title}</strong>
              <span className="muted">{k.description}</span>
            </span>
          </label>
        ))}
      </fieldset>
    </div>
  );
}

function SettingsStep({ state, update, info, showAll }: StepProps & { info?: KindInfo; showAll: boolean }) {
  if (!info) return <p className="error">No form for source kind “{state.sourceKind}”.</p>;
  return (
    <div className="stack">
      <p className="muted">{info.description}</p>
      <div className="field">
        <label htmlFor="wizard-source-name">Source name</label>
        <input
          id="wizard-source-name"
          data-testid="wizard-source-name"
          value={state.sourceName}
          onChange={(e) => update({ sourceName: e.target.value })}
        />
        <p className="help">How transforms and targets refer to this source.</p>
      </div>
      <SchemaForm
        schema={info.schema}
        value={state.source}
        onChange={(source) => update({ source, tables: null })}
        hide={["kind"]}
        showAll={showAll}
        testid="source"
        onStoreSecret={(name, value) => backend.storeSecret(`syncline/${state.name}-${state.sourceName}-${name}`, value)}
      />
    </div>
  );
}

/** Renders the draft to TOML, then runs `f` on the pipeline as the commands take it. */
async function withText<T>(path: string, draft: PipelineDraft, f: (p: backend.PipelineRef) => Promise<T>): Promise<T> {
  const rendered = await backend.renderPipeline(draft);
  return f({ path, text: rendered.text });
}

const OUTCOME_LABEL = { pass: "Passed", warn: "Warning", fail: "Failed" } as const;

function ConnectionStep({ path, draft, source }: { path: string; draft: PipelineDraft; source: string }) {
  const [checks, setChecks] = useState<CheckItem[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  const run = async () => {
    setRunning(true);
    setError(null);
    try {
      setChecks(await withText(path, draft, (p) => backend.testConnection(p, source)));
    } catch (e) {
      setError(errorText(e));
    } finally {
      setRunning(false);
    }
  };
  useEffect(() => {
    void run();
    // Test once on arrival; "Test again" repeats it.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <div className="stack">
      <div className="row">
        <button type="button" className="secondary" onClick={run} disabled={running} data-testid="test-connection">
          {running ? "Testing…" : "Test again"}
        </button>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {checks && (
        <ul className="checks" data-testid="checks">
          {checks.map((c, i) => (
            <li key={i} className={`check ${c.outcome}`} data-testid={`check-${c.outcome}`}>
              <span className={`badge ${c.outcome}`}>{OUTCOME_LABEL[c.outcome]}</span>
              <div>
                <strong>{c.name}</strong>
                <div>{c.detail}</div>
                {c.fix && <div className="fix">How to fix: {c.fix}</div>}
              </div>
            </li>
          ))}
        </ul>
      )}
      {checks && checks.length === 0 && <p className="muted">No checks for this source.</p>}
    </div>
  );
}

function TablesStep({ path, draft, state, update }: StepProps & { path: string; draft: PipelineDraft }) {
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    if (state.tables) return;
    setLoading(true);
    withText(path, draft, (p) => backend.discover(p, state.sourceName))
      .then((tables) => {
        const configured = Array.isArray(state.source.tables) ? (state.source.tables as Record<string, unknown>[]) : [];
        const choices: Record<string, TableChoice> = {};
        for (const t of tables) {
          const entry = configured.find((c) => c.name === t.name);
          choices[t.name] = {
            include: configured.length === 0 || entry !== undefined,
            mode: typeof entry?.mode === "string" ? entry.mode : t.defaultMode,
            columns: t.columns.map((c) => c.name),
          };
        }
        update({ tables, choices });
      }, (e) => setError(errorText(e)))
      .finally(() => setLoading(false));
    // Discover once per source; Back and Next keep the choices.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const setChoice = (name: string, patch: Partial<TableChoice>) =>
    update({ choices: { ...state.choices, [name]: { ...state.choices[name], ...patch } } });
  if (loading) return <p className="muted">Reading the source's tables…</p>;
  if (error) return <p className="error" role="alert">Tables could not be read: {error}</p>;
  if (!state.tables) return null;
  return (
    <div className="stack tables-step" data-testid="tables">
      <p className="muted">Choose the tables to sync, how each is kept in sync, and the columns the transform starts from.</p>
      {state.tables.map((t) => {
        const c = state.choices[t.name];
        return (
          <div key={t.name} className={`table-choice${c.include ? "" : " excluded"}`} data-testid={`table-${t.name}`}>
            <div className="row">
              <label className="inline">
                <input
                  type="checkbox"
                  checked={c.include}
                  onChange={(e) => setChoice(t.name, { include: e.target.checked })}
                  data-testid={`table-include-${t.name}`}
                />
                <strong>{t.name}</strong>
              </label>
              <label className="inline">
                Sync mode
                <select
                  value={c.mode}
                  onChange={(e) => setChoice(t.name, { mode: e.target.value })}
                  disabled={!c.include}
                  data-testid={`table-mode-${t.name}`}
                >
                  {t.modes.map((m) => (
                    <option key={m} value={m}>
                      {m}
                    </option>
                  ))}
                </select>
              </label>
            </div>
            <div className="columns">
              {t.columns.map((col) => (
                <label key={col.name} className="inline column" title={col.dataType}>
                  <input
                    type="checkbox"
                    disabled={!c.include || col.key}
                    checked={col.key || c.columns.includes(col.name)}
                    onChange={(e) =>
                      setChoice(t.name, {
                        columns: e.target.checked
                          ? t.columns.map((x) => x.name).filter((n) => n === col.name || c.columns.includes(n))
                          : c.columns.filter((n) => n !== col.name),
                      })
                    }
                    data-testid={`column-${t.name}-${col.name}`}
                  />
                  {col.name}
                  <span className="col-type">{col.dataType}</span>
                  {col.key && <span className="badge key">key</span>}
                </label>
              ))}
            </div>
          </div>
        );
      })}
    </div>
  );
}

function TransformStep({ path, draft, state, update }: StepProps & { path: string; draft: PipelineDraft }) {
  const t = state.transform;
  const [result, setResult] = useState<PreviewResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);
  const [limit, setLimit] = useState(1000);
  const setT = (patch: Partial<TransformState>) => update({ transform: { ...t, ...patch } });
  const tables = (state.tables ?? []).filter((x) => state.choices[x.name]?.include);
  const inputs = tables.map((x) => `${state.sourceName}.${x.name}`);
  const completion = useMemo(() => {
    const out: Record<string, string[]> = {};
    for (const x of state.tables ?? []) {
      const full = `${state.sourceName}.${x.name}`;
      if (full === t.input) out.source = x.columns.map((c) => c.name);
      if (t.lookups.includes(full)) out[tableShortName(x.name)] = x.columns.map((c) => c.name);
    }
    return out;
  }, [state.tables, state.sourceName, t.input, t.lookups]);

  const preview = async () => {
    setRunning(true);
    setError(null);
    try {
      setResult(await withText(path, draft, (p) => backend.previewTransform(p, t.name, t.sql, limit, 0)));
    } catch (e) {
      setError(errorText(e));
    } finally {
      setRunning(false);
    }
  };

  return (
    <div className="stack">
      <label className="inline">
        <input type="checkbox" checked={t.enabled} onChange={(e) => setT({ enabled: e.target.checked })} data-testid="transform-enabled" />
        Add a transform (SQL over each batch of changes)
      </label>
      {t.enabled && (
        <>
          <div className="row wrap">
            <div className="field">
              <label htmlFor="transform-name">Name</label>
              <input id="transform-name" data-testid="transform-name" value={t.name} onChange={(e) => setT({ name: e.target.value })} />
              <p className="help">The output table is named after the transform.</p>
            </div>
            <div className="field">
              <label htmlFor="transform-input">Input table</label>
              <select
                id="transform-input"
                data-testid="transform-input"
                value={t.input}
                onChange={(e) => {
                  const table = tables.find((x) => `${state.sourceName}.${x.name}` === e.target.value);
                  const previous = t.input.split(".").slice(1).join(".");
                  const renamed = !t.name || t.name === `${tableShortName(previous)}_view`;
                  setT({
                    input: e.target.value,
                    name: renamed && table ? `${tableShortName(table.name)}_view` : t.name,
                    sql: defaultSql(state.choices[table?.name ?? ""]?.columns ?? []),
                    lookups: t.lookups.filter((l) => l !== e.target.value),
                  });
                }}
              >
                {inputs.map((i) => (
                  <option key={i} value={i}>
                    {i}
                  </option>
                ))}
              </select>
              <p className="help">The SQL reads it as <code>source</code>.</p>
            </div>
            <div className="field">
              <span className="label">Lookups</span>
              <div className="row wrap">
                {inputs
                  .filter((i) => i !== t.input)
                  .map((i) => (
                    <label key={i} className="inline">
                      <input
                        type="checkbox"
                        checked={t.lookups.includes(i)}
                        onChange={(e) =>
                          setT({ lookups: e.target.checked ? [...t.lookups, i] : t.lookups.filter((x) => x !== i) })
                        }
                        data-testid={`transform-lookup-${i}`}
                      />
                      {tableShortName(i)}
                    </label>
                  ))}
              </div>
              <p className="help">Other tables the SQL may join, by their table name.</p>
            </div>
          </div>
          <SqlEditor
            value={t.sql}
            onChange={(sql) => setT({ sql })}
            tables={completion}
            defaultTable="source"
            error={result?.error ?? null}
            testid="sql-editor"
          />
          <div className="row">
            <button type="button" onClick={preview} disabled={running} data-testid="preview-run">
              {running ? "Running…" : "Preview"}
            </button>
            <label className="inline">
              Sample rows
              <input
                type="number"
                min={1}
                className="narrow"
                value={limit}
                onChange={(e) => setLimit(Math.max(1, Number(e.target.value) || 1))}
                data-testid="preview-limit"
              />
            </label>
          </div>
          {error && <p className="error" role="alert" data-testid="preview-failed">{error}</p>}
          {result && <PreviewPanel result={result} />}
        </>
      )}
    </div>
  );
}

export function PreviewPanel({ result }: { result: PreviewResult }) {
  return (
    <div className="preview" data-testid="preview">
      {result.error && (
        <p className="error" role="alert" data-testid="preview-error">
          {result.error.line !== null && `Line ${result.error.line}, column ${result.error.column ?? 1}: `}
          {result.error.message}
        </p>
      )}
      <p className="muted" data-testid="preview-counts">
        {fmtInt(result.inputRows)} input rows sampled → {fmtInt(result.outputRows)} output rows, in{" "}
        {Math.round(result.elapsedMs)} ms
      </p>
      {!result.error && (
        <div className="preview-body">
          <div className="output-schema" data-testid="preview-schema">
            <h3>Output schema</h3>
            <table className="plain">
              <tbody>
                {result.columns.map((c) => (
                  <tr key={c.name}>
                    <td>{c.name}</td>
                    <td className="col-type">{c.dataType}</td>
                    <td>{result.key.includes(c.name) && <span className="badge key">key</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="output-rows">
            <VirtualGrid columns={result.columns} rows={result.rows} height={300} testid="preview-grid" />
          </div>
        </div>
      )}
      {!result.error && result.recentChanges.length > 0 && <RecentChanges changes={result.recentChanges} />}
    </div>
  );
}

const json = (v: unknown) => (v === null || v === undefined ? "" : JSON.stringify(v));

function RecentChanges({ changes }: { changes: RecentChange[] }) {
  return (
    <div className="recent-changes" data-testid="preview-changes">
      <h3>Recent changes and what the target gets</h3>
      <table className="status-table">
        <thead>
          <tr>
            <th>Change</th>
            <th>Row</th>
            <th>Target gets</th>
          </tr>
        </thead>
        <tbody>
          {changes.map((c, i) => (
            <tr key={i}>
              <td>
                <span className={`badge op ${c.op}`}>{c.op}</span>
              </td>
              <td>
                <code className="raw">{json(c.after ?? c.before)}</code>
              </td>
              <td>
                {c.error ? (
                  <span className="error">Dead letter: {c.error}</span>
                ) : c.output.length === 0 ? (
                  <span className="muted">nothing (filtered out)</span>
                ) : (
                  c.output.map((o, j) => (
                    <div key={j}>
                      <span className={`badge op ${o.op}`}>{o.op}</span> <code className="raw">{json(o.row)}</code>
                    </div>
                  ))
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function TargetsStep({
  state,
  update,
  kinds,
  kindInfo,
  showAll,
}: StepProps & { kinds: KindInfo[]; kindInfo: (kind: string) => KindInfo | undefined; showAll: boolean }) {
  const [newKind, setNewKind] = useState("duckdb");
  const [newName, setNewName] = useState("");
  const inputs = [
    state.sourceName,
    ...(Array.isArray(state.source.tables) ? (state.source.tables as { name: string }[]) : []).map(
      (t) => `${state.sourceName}.${t.name}`,
    ),
    ...(state.transform.enabled && state.transform.name ? [state.transform.name] : []),
  ];
  const setTarget = (name: string, value: Record<string, unknown>) => update({ targets: { ...state.targets, [name]: value } });
  const add = () => {
    const name = newName.trim() || `${newKind}${Object.keys(state.targets).length + 1}`;
    if (state.targets[name]) return;
    const defaults: Record<string, unknown> =
      newKind === "duckdb" ? { kind: newKind, path: `${name}.duckdb`, inputs: [inputs[inputs.length - 1]] } : { kind: newKind, inputs: [inputs[inputs.length - 1]] };
    setTarget(name, defaults);
    setNewName("");
  };
  return (
    <div className="stack">
      {Object.entries(state.targets).map(([name, target]) => {
        const info = kindInfo(String(target.kind));
        const chosen = Array.isArray(target.inputs) ? (target.inputs as string[]) : [];
        return (
          <div key={name} className="card" data-testid={`target-${name}`}>
            <div className="row spread">
              <h3>
                {name} <span className="muted">({String(target.kind)})</span>
              </h3>
              <button
                type="button"
                className="secondary small"
                onClick={() => {
                  const next = { ...state.targets };
                  delete next[name];
                  update({ targets: next });
                }}
                data-testid={`target-remove-${name}`}
              >
                Remove
              </button>
            </div>
            <div className="field">
              <span className="label">Inputs</span>
              <div className="row wrap">
                {[...new Set([...inputs, ...chosen])].map((i) => (
                  <label key={i} className="inline">
                    <input
                      type="checkbox"
                      checked={chosen.includes(i)}
                      onChange={(e) =>
                        setTarget(name, { ...target, inputs: e.target.checked ? [...chosen, i] : chosen.filter((x) => x !== i) })
                      }
                      data-testid={`target-${name}-input-${i}`}
                    />
                    {i}
                  </label>
                ))}
              </div>
              <p className="help">A source (all its tables), one table, or a transform's output.</p>
            </div>
            {info ? (
              <SchemaForm
                schema={info.schema}
                value={target}
                onChange={(v) => setTarget(name, { ...v, kind: target.kind, inputs: target.inputs })}
                hide={["kind", "inputs"]}
                showAll={showAll}
                testid={`target-${name}`}
                onStoreSecret={(field, value) => backend.storeSecret(`syncline/${state.name}-${name}-${field}`, value)}
              />
            ) : (
              <p className="error">No form for target kind “{String(target.kind)}”.</p>
            )}
          </div>
        );
      })}
      <div className="row add-target">
        <select value={newKind} onChange={(e) => setNewKind(e.target.value)} data-testid="target-new-kind" aria-label="Target kind">
          {(kinds.length ? kinds : [{ kind: "duckdb", title: "DuckDB" } as KindInfo]).map((k) => (
            <option key={k.kind} value={k.kind}>
              {k.title}
            </option>
          ))}
        </select>
        <input placeholder="target name" value={newName} onChange={(e) => setNewName(e.target.value)} data-testid="target-new-name" aria-label="Target name" />
        <button type="button" className="secondary" onClick={add} data-testid="target-add">
          Add target
        </button>
      </div>
    </div>
  );
}

export function TomlView({ text, problems, testid }: { text: string; problems: Problem[]; testid: string }) {
  const bad = new Set(problems.map((p) => p.line).filter((l): l is number => l !== null));
  return (
    <pre className="toml" data-testid={testid}>
      {text.split("\n").map((line, i) => (
        <div key={i} className={bad.has(i + 1) ? "bad" : undefined}>
          <span className="ln">{i + 1}</span>
          <span className="code">{line}</span>
        </div>
      ))}
    </pre>
  );
}

export function ProblemList({ problems }: { problems: Problem[] }) {
  if (problems.length === 0)
    return (
      <p className="ok" data-testid="review-valid">
        No problems found.
      </p>
    );
  return (
    <ul className="problems" data-testid="review-problems">
      {problems.map((p, i) => (
        <li key={i} className="error">
          {p.line !== null && `Line ${p.line}${p.column !== null ? `:${p.column}` : ""} `}
          {p.field && <code>{p.field}</code>} {p.message}
        </li>
      ))}
    </ul>
  );
}

function ReviewStep({ path, draft }: { path: string; draft: PipelineDraft }) {
  const [text, setText] = useState<string | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const rendered = await backend.renderPipeline(draft);
        if (!live) return;
        setText(rendered.text);
        setProblems(rendered.problems);
        const more = await backend.validatePipeline({ path, text: rendered.text });
        if (live) setProblems([...rendered.problems, ...more]);
      } catch (e) {
        if (live) setError(errorText(e));
      }
    })();
    return () => {
      live = false;
    };
  }, [path, draft]);
  return (
    <div className="stack">
      <p className="muted">
        The pipeline file as it will be saved to <code>{path}</code>. Secrets appear only as references.
      </p>
      {error && <p className="error" role="alert">{error}</p>}
      {text !== null && (
        <>
          <ProblemList problems={problems} />
          <TomlView text={text} problems={problems} testid="review-toml" />
        </>
      )}
    </div>
  );
}

function SaveStep({ path, draft, onRun }: { path: string; draft: PipelineDraft; onRun: (path: string) => void }) {
  const [target, setTarget] = useState(path);
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const rendered = await backend.renderPipeline(draft);
      await backend.savePipeline({ path: target, text: rendered.text });
      setSaved(target);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const browse = async () => {
    const chosen = await backend.pickSavePath(target);
    if (chosen) setTarget(chosen);
  };
  return (
    <div className="stack">
      <div className="field">
        <label htmlFor="save-path">Pipeline file</label>
        <div className="row">
          <input id="save-path" data-testid="save-path" value={target} onChange={(e) => setTarget(e.target.value)} spellCheck={false} />
          <button type="button" className="secondary" onClick={browse} data-testid="save-browse">
            Browse…
          </button>
          <button type="button" onClick={save} disabled={busy} data-testid="save-button">
            Save
          </button>
        </div>
        <p className="help">Relative paths inside the file resolve against its folder: keep it beside the data it names.</p>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {saved && (
        <p className="ok" data-testid="save-status">
          Saved to {saved}
        </p>
      )}
      <div className="row">
        <button type="button" disabled={!saved || saved !== target} onClick={() => onRun(target)} data-testid="run-button">
          Run
        </button>
        {!saved && <span className="muted">Save the pipeline to run it.</span>}
      </div>
    </div>
  );
}
