// Step 5: an optional SQL transform, with a preview over sampled rows.
import { useMemo, useState } from "react";
import * as backend from "../../backend";
import { SqlEditor } from "../../components/LazySqlEditor";
import { useCall } from "../../useCall";
import type { PipelineDraft, PreviewResult } from "../../types";
import { withText } from "./draft";
import { PreviewPanel } from "./PreviewPanel";
import { defaultSql, tableShortName } from "./sql";
import type { StepProps, TransformState } from "./state";

export function TransformStep({ path, draft, state, update }: StepProps & { path: string; draft: PipelineDraft }) {
  const t = state.transform;
  const { result, error, running, call } = useCall<PreviewResult>();
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

  const preview = () => call(() => withText(path, draft, (p) => backend.previewTransform(p, t.name, t.sql, limit, 0)));

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
