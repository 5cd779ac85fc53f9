// Step 6: the targets, their inputs and settings.
import { useState } from "react";
import * as backend from "../../backend";
import { SchemaForm } from "../../components/SchemaForm";
import { useCall } from "../../useCall";
import type { CheckItem, KindInfo, PipelineDraft } from "../../types";
import { CheckList } from "./ConnectionStep";
import { withText } from "./draft";
import type { StepProps } from "./state";

/** A target's `Test connection`: the same checks `syncline check` runs. */
function TargetCheck({ path, draft, name }: { path: string; draft: PipelineDraft; name: string }) {
  const { result: checks, error, running, call } = useCall<CheckItem[]>();
  const run = () => call(() => withText(path, draft, (p) => backend.testConnection(p, name)), true);
  return (
    <div className="stack">
      <div className="row">
        <button type="button" className="secondary small" onClick={run} disabled={running} data-testid={`target-${name}-test`}>
          {running ? "Testing…" : "Test connection"}
        </button>
      </div>
      {error && (
        <p className="error" role="alert" data-testid={`target-${name}-test-error`}>
          {error}
        </p>
      )}
      {checks && <CheckList checks={checks} testid={`target-${name}-checks`} itemTestid={`target-${name}-check`} />}
    </div>
  );
}

export function TargetsStep({
  state,
  update,
  kinds,
  kindInfo,
  showAll,
  path,
  draft,
}: StepProps & {
  kinds: KindInfo[];
  kindInfo: (kind: string) => KindInfo | undefined;
  showAll: boolean;
  /** Where the pipeline will be saved, and its draft (for the connection test). */
  path: string;
  draft: PipelineDraft;
}) {
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
    // Local targets get a file or folder beside the pipeline.
    const local: Record<string, string> = { duckdb: `${name}.duckdb`, search: `${name}.index` };
    const defaults: Record<string, unknown> = {
      kind: newKind,
      ...(local[newKind] ? { path: local[newKind] } : {}),
      inputs: [inputs[inputs.length - 1]],
    };
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
            <TargetCheck path={path} draft={draft} name={name} />
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
