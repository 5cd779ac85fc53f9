// New pipeline: source kind -> settings -> connection test -> tables ->
// transform and preview -> targets -> review -> save and run.
import { useEffect, useMemo, useState } from "react";
import * as backend from "../../backend";
import { errorText } from "../../errors";
import { validate } from "../../schema";
import { draftFromToml } from "../../toml";
import type { KindInfo } from "../../types";
import { ConnectionStep } from "./ConnectionStep";
import { buildDraft, pipelinePath } from "./draft";
import { ReviewStep } from "./ReviewStep";
import { SaveStep } from "./SaveStep";
import { SettingsStep } from "./SettingsStep";
import { SourceStep } from "./SourceStep";
import { defaultSql, tableShortName } from "./sql";
import { initialState, SAMPLE_KIND, STEPS, type WizardState } from "./state";
import { TablesStep } from "./TablesStep";
import { TargetsStep } from "./TargetsStep";
import { TransformStep } from "./TransformStep";

type Props = {
  onRun: (path: string) => void;
};

export function Wizard({ onRun }: Props) {
  const [step, setStep] = useState(0);
  const [state, setState] = useState<WizardState>(initialState);
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
            transform: initialState.transform,
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
          <TargetsStep
            state={state}
            update={update}
            kinds={targetKinds}
            kindInfo={(k) => kindInfo(k, "target")}
            showAll={showAll}
            path={path}
            draft={draft}
          />
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
