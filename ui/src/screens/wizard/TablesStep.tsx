// Step 4: the source's tables to sync, their sync mode and columns.
import { useEffect, useState } from "react";
import * as backend from "../../backend";
import { errorText } from "../../errors";
import type { PipelineDraft } from "../../types";
import { withText } from "./draft";
import type { StepProps, TableChoice } from "./state";

export function TablesStep({ path, draft, state, update }: StepProps & { path: string; draft: PipelineDraft }) {
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
