// Rows the targets kept, with why; replay after a fix, or discard.
import { useEffect, useState } from "react";
import * as backend from "../backend";
import { PipelineFileRow } from "../components/PipelineFileRow";
import { errorText } from "../errors";
import type { ReplayReport, TargetDeadLetters } from "../types";

export function DeadLetters({ path, onPath }: { path: string; onPath: (p: string) => void }) {
  const [pathInput, setPathInput] = useState(path);
  const [lists, setLists] = useState<TargetDeadLetters[] | null>(null);
  const [selected, setSelected] = useState<Record<string, number[]>>({});
  const [report, setReport] = useState<ReplayReport[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const ref = async (): Promise<backend.PipelineRef> => {
    const opened = await backend.openPipeline(path);
    return { path, text: opened.text };
  };

  const load = async () => {
    setError(null);
    if (!path) return;
    try {
      setLists(await backend.dlqList(await ref()));
      setSelected({});
    } catch (e) {
      setLists(null);
      setError(errorText(e));
    }
  };

  useEffect(() => {
    setPathInput(path);
    setReport(null);
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [path]);

  const act = async (f: (p: backend.PipelineRef) => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f(await ref());
      await load();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="screen" data-testid="dlq-view">
      <header className="screen-header">
        <h1>Dead letters</h1>
      </header>
      <PipelineFileRow
        label="Pipeline file"
        value={pathInput}
        onChange={setPathInput}
        onError={setError}
        testId="dlq-path"
      >
        <button type="button" onClick={() => (pathInput === path ? load() : onPath(pathInput))} data-testid="dlq-load">
          Load
        </button>
      </PipelineFileRow>
      {error && <p className="error banner" role="alert">{error}</p>}
      {report && (
        <div className="card" data-testid="dlq-report">
          {report.map((r) => (
            <p key={r.target}>
              <strong>{r.target}</strong>: {r.replayed.length} replayed, {r.superseded.length} superseded, {r.failed.length} still
              failing, {r.notReplayable.length} not replayable (fix them at their origin).
              {r.failed.map(([id, why]) => (
                <span key={id} className="error block">
                  #{id}: {why}
                </span>
              ))}
            </p>
          ))}
        </div>
      )}
      {lists?.map((l) => {
        const chosen = selected[l.target] ?? [];
        return (
          <div key={l.target} className="card" data-testid={`dlq-target-${l.target}`}>
            <div className="row spread">
              <h2>
                {l.target} <span className="muted">({l.rows.length} kept)</span>
              </h2>
              <div className="row">
                <button
                  type="button"
                  disabled={busy || l.rows.length === 0}
                  onClick={() => act(async (p) => setReport(await backend.dlqReplay(p, l.target)))}
                  data-testid={`dlq-replay-${l.target}`}
                >
                  Replay all
                </button>
                <button
                  type="button"
                  className="danger"
                  disabled={busy || chosen.length === 0}
                  onClick={() => act((p) => backend.dlqDiscard(p, l.target, chosen))}
                  data-testid={`dlq-discard-${l.target}`}
                >
                  Discard selected ({chosen.length})
                </button>
              </div>
            </div>
            {l.rows.length === 0 ? (
              <p className="muted">Nothing kept.</p>
            ) : (
              <table className="status-table dlq">
                <thead>
                  <tr>
                    <th />
                    <th>#</th>
                    <th>Table</th>
                    <th>Stage</th>
                    <th>Origin</th>
                    <th>Reason</th>
                    <th>Row</th>
                  </tr>
                </thead>
                <tbody>
                  {l.rows.map((r) => (
                    <tr key={r.id} data-testid={`dlq-row-${r.id}`}>
                      <td>
                        <input
                          type="checkbox"
                          aria-label={`Select ${r.id}`}
                          checked={chosen.includes(r.id)}
                          onChange={(e) =>
                            setSelected({
                              ...selected,
                              [l.target]: e.target.checked ? [...chosen, r.id] : chosen.filter((x) => x !== r.id),
                            })
                          }
                        />
                      </td>
                      <td>{r.id}</td>
                      <td>{r.table}</td>
                      <td>{r.stage}</td>
                      <td>
                        {r.origin}
                        {r.line !== null && `:${r.line}`}
                      </td>
                      <td className="error">{r.reason}</td>
                      <td>
                        <code className="raw">{r.raw}</code>
                        {r.kept === null && <span className="muted block">Fix at its origin; not replayable.</span>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        );
      })}
    </section>
  );
}
