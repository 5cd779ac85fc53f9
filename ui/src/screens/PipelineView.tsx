// A pipeline at work: its graph, each table's phase and progress, a live
// chart of throughput and lag, errors, and the controls.
import { useEffect, useRef, useState } from "react";
import * as backend from "../backend";
import { LiveChart } from "../components/LiveChart";
import { PipelineFileRow } from "../components/PipelineFileRow";
import { PipelineGraph, verdictText } from "../components/PipelineGraph";
import { VirtualGrid } from "../components/VirtualGrid";
import { errorText } from "../errors";
import { fmtBytes, fmtInt, fmtRate, fmtSeconds } from "../format";
import { basename, resolveFrom } from "../paths";
import { useRuns } from "../runs";
import type { OpenedPipeline, TableStatus, VerifyResult } from "../types";
import type { SearchTarget } from "./IndexSearch";
import type { RedisTarget } from "./RedisBrowser";

type Props = {
  selected: string | null;
  onSelect: (path: string | null) => void;
  onOpenData: (database: string) => void;
  onOpenDeadLetters: (path: string) => void;
  onOpenSearch: (search: SearchTarget) => void;
  onOpenRedis: (redis: RedisTarget) => void;
};

const PHASE_LABEL: Record<string, string> = {
  pending: "Pending",
  snapshot: "Snapshot",
  catch_up: "Catching up",
  streaming: "Streaming",
  done: "Done",
  paused: "Paused",
};

export function PipelineView({ selected, onSelect, onOpenData, onOpenDeadLetters, onOpenSearch, onOpenRedis }: Props) {
  const { runs, start, watch, resume, setPaused, forget } = useRuns();
  const [pathInput, setPathInput] = useState(selected ?? "");
  const [opened, setOpened] = useState<OpenedPipeline | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [confirmDrop, setConfirmDrop] = useState(false);
  const [busy, setBusy] = useState(false);
  const [verified, setVerified] = useState<VerifyResult | null>(null);
  const [verifying, setVerifying] = useState(false);
  const [repaired, setRepaired] = useState<string[] | null>(null);
  // The pipeline shown now: a verify that ends after another was chosen
  // does not show its result there.
  const shown = useRef<string | null>(selected);
  shown.current = selected;

  // Pipelines the background engine runs (they go on while the window is closed).
  useEffect(() => {
    backend.runningPipelines().then(
      (list) => {
        for (const p of list) void watch(p.path, p.paused);
        if (!selected && list.length > 0) onSelect(list[0].path);
      },
      (e) => setError(errorText(e)),
    );
    // Once per visit.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    setOpened(null);
    setConfirmDrop(false);
    setVerified(null);
    setRepaired(null);
    if (!selected) return;
    setPathInput(selected);
    backend.openPipeline(selected).then(setOpened, (e) => setError(errorText(e)));
  }, [selected]);

  const act = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const run = selected ? runs[selected] : undefined;
  const status = run?.status ?? null;
  const state = run?.paused ? "paused" : status?.state ?? "not running";
  const active = status && (status.state === "starting" || status.state === "running") && !run?.paused;
  const list = Object.values(runs);
  const verdicts = verified
    ? Object.fromEntries(verified.targets.map((v) => [v.target, verdictText(v, verified.verifiedAt, true)]))
    : undefined;
  const verify = async () => {
    if (!opened) return;
    const mine = selected;
    setVerifying(true);
    setError(null);
    setRepaired(null);
    try {
      const result = await backend.verifyPipeline({ path: opened.path, text: opened.text }, Boolean(active));
      if (shown.current === mine) setVerified(result);
    } catch (e) {
      if (shown.current === mine) setError(errorText(e));
    } finally {
      setVerifying(false);
    }
  };
  const repair = async () => {
    if (!opened) return;
    const mine = selected;
    setVerifying(true);
    setError(null);
    try {
      const result = await backend.repairPipeline({ path: opened.path, text: opened.text });
      if (shown.current === mine) {
        setRepaired(result.repaired);
        setVerified(result.verified);
      }
    } catch (e) {
      if (shown.current === mine) setError(errorText(e));
    } finally {
      setVerifying(false);
    }
  };
  const busyRun = Boolean(active) || status?.state === "stopping";
  const differs = verified?.targets.some((v) => v.state === "differs") ?? false;

  return (
    <section className="screen" data-testid="pipeline-view">
      <header className="screen-header">
        <h1>Pipelines</h1>
      </header>
      <PipelineFileRow
        label="Pipeline file"
        value={pathInput}
        onChange={setPathInput}
        onError={setError}
        testId="pipeline-path"
      >
        <button type="button" className="secondary" onClick={() => onSelect(pathInput.trim() || null)} data-testid="pipeline-show">
          Show
        </button>
      </PipelineFileRow>
      {list.length > 0 && (
        <nav className="tabs" aria-label="Pipelines">
          {list.map((r) => (
            <button
              key={r.path}
              type="button"
              className={r.path === selected ? "tab current" : "tab"}
              onClick={() => onSelect(r.path)}
              data-testid={`pipeline-item-${basename(r.path)}`}
              title={r.path}
            >
              {r.status?.pipeline ?? basename(r.path)}
              <span className={`dot ${r.paused ? "paused" : r.status?.state ?? "stopped"}`} />
            </button>
          ))}
        </nav>
      )}
      {error && (
        <p className="error banner" role="alert" data-testid="pipeline-error">
          {error}
        </p>
      )}
      {!selected && <p className="muted">Open a pipeline file, or create one with New pipeline.</p>}
      {selected && (
        <>
          <div className="row spread">
            <h2>
              {opened?.draft.name ?? basename(selected)}{" "}
              <span className={`badge state ${state.replace(" ", "-")}`} data-testid="pipeline-state">
                {state}
              </span>
            </h2>
            <div className="row controls">
              <button type="button" disabled={busy || !!active} onClick={() => act(() => start(selected))} data-testid="pipeline-start">
                Start
              </button>
              <button
                type="button"
                className="secondary"
                disabled={busy || !active}
                onClick={() => act(async () => {
                  await backend.pausePipeline(selected);
                  setPaused(selected, true);
                })}
                data-testid="pipeline-pause"
              >
                Pause
              </button>
              <button
                type="button"
                className="secondary"
                disabled={busy || !run?.paused}
                onClick={() => act(() => resume(selected))}
                data-testid="pipeline-resume"
              >
                Resume
              </button>
              <button
                type="button"
                className="secondary"
                disabled={busy || !active}
                onClick={() => act(() => backend.stopPipeline(selected))}
                data-testid="pipeline-stop"
              >
                Stop
              </button>
              {!confirmDrop ? (
                <button type="button" className="danger" disabled={busy} onClick={() => setConfirmDrop(true)} data-testid="pipeline-drop">
                  Drop…
                </button>
              ) : (
                <button
                  type="button"
                  className="danger"
                  disabled={busy}
                  onClick={() =>
                    act(async () => {
                      await backend.dropPipeline(selected);
                      forget(selected);
                      setConfirmDrop(false);
                    })
                  }
                  data-testid="pipeline-drop-confirm"
                >
                  Drop: remove its slots, publications and state
                </button>
              )}
            </div>
          </div>
          <p className="muted path">{selected}</p>
          {opened && (
            <PipelineGraph
              draft={opened.draft}
              status={status}
              verdicts={verdicts}
              onSearch={(target, query) => onOpenSearch({ pipeline: { path: opened.path, text: opened.text }, target, query })}
            />
          )}
          {verified && (
            <div className="verify" data-testid="pipeline-verify-result">
              <div className="row wrap">
                {verified.targets.map((v) => (
                  <span key={v.target} className={`badge verdict-${v.state}`} title={v.detail} data-testid={`verify-badge-${v.target}`}>
                    {v.target}: {verdictText(v, verified.verifiedAt)}
                  </span>
                ))}
                <span className="muted small">{Math.round(verified.elapsedMs)} ms</span>
                {differs && (
                  <button
                    type="button"
                    className="secondary small"
                    disabled={verifying || busyRun}
                    onClick={() => void repair()}
                    title={busyRun ? "Stop the pipeline first: a repair must not race its changes" : "Write the source's rows over what differs, then verify again"}
                    data-testid="pipeline-repair"
                  >
                    Repair
                  </button>
                )}
              </div>
              {repaired && (
                <p className="muted small" data-testid="pipeline-repaired">
                  Repaired {repaired.length > 0 ? repaired.join("; ") : "nothing"}
                </p>
              )}
              {verified.rows.length > 0 && <VirtualGrid columns={verified.columns} rows={verified.rows} height={240} testid="verify-grid" />}
            </div>
          )}
          <h3>Tables</h3>
          {status && Object.keys(status.tables).length > 0 ? (
            <table className="status-table" data-testid="pipeline-tables">
              <thead>
                <tr>
                  <th>Table</th>
                  <th>Phase</th>
                  <th className="progress-col">Snapshot</th>
                  <th className="num">Rows/s</th>
                  <th className="num">Lag</th>
                  <th className="num">Inserts</th>
                  <th className="num">Updates</th>
                  <th className="num">Deletes</th>
                  <th className="num">Dead letters</th>
                </tr>
              </thead>
              <tbody>
                {Object.entries(status.tables).map(([name, t]) => (
                  <TableRow key={name} name={name} t={t} />
                ))}
              </tbody>
            </table>
          ) : (
            <p className="muted">{run ? "Waiting for the first status…" : "Not running. Start it to see its progress."}</p>
          )}
          {status && Object.keys(status.retainedBytes).length > 0 && (
            <p data-testid="pipeline-retained">
              Retained change log:{" "}
              {Object.entries(status.retainedBytes)
                .map(([src, b]) => `${src} ${fmtBytes(b)}`)
                .join(", ")}
            </p>
          )}
          <h3>Throughput and lag</h3>
          <LiveChart history={run?.history ?? []} />
          {status && status.errors.length > 0 && (
            <div className="errors" data-testid="pipeline-errors">
              <h3>Errors</h3>
              <ul>
                {status.errors
                  .slice()
                  .reverse()
                  .map((e, i) => (
                    <li key={i} className="error">
                      {e}
                    </li>
                  ))}
              </ul>
            </div>
          )}
          {opened && (
            <div className="row wrap">
              {Object.entries(opened.draft.targets)
                .filter(([, t]) => t.kind === "duckdb" && typeof t.path === "string")
                .map(([name, t]) => (
                  <button
                    key={name}
                    type="button"
                    className="secondary"
                    onClick={() => onOpenData(resolveFrom(selected, String(t.path)))}
                    data-testid={`pipeline-open-data-${name}`}
                  >
                    Browse data in {name}
                  </button>
                ))}
              {Object.entries(opened.draft.targets)
                .filter(([, t]) => t.kind === "redis")
                .map(([name]) => (
                  <button
                    key={name}
                    type="button"
                    className="secondary"
                    onClick={() => onOpenRedis({ pipeline: { path: opened.path, text: opened.text }, target: name })}
                    data-testid={`pipeline-redis-${name}`}
                  >
                    Browse keys in {name}
                  </button>
                ))}
              {Object.entries(opened.draft.targets)
                .filter(([, t]) => t.kind === "search")
                .map(([name]) => (
                  <button
                    key={name}
                    type="button"
                    className="secondary"
                    onClick={() => onOpenSearch({ pipeline: { path: opened.path, text: opened.text }, target: name })}
                    data-testid={`pipeline-search-${name}`}
                  >
                    Search {name}
                  </button>
                ))}
              <button type="button" className="secondary" onClick={() => onOpenDeadLetters(selected)} data-testid="pipeline-open-dlq">
                Dead letters
              </button>
              <button
                type="button"
                className="secondary"
                disabled={verifying}
                onClick={() => void verify()}
                title="Compare every target with its source, row by row"
                data-testid="pipeline-verify"
              >
                {verifying ? "Verifying…" : "Verify"}
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}

function TableRow({ name, t }: { name: string; t: TableStatus }) {
  const total = t.snapshotTotal;
  const pct = total && total > 0 ? Math.min(100, (t.snapshotDone / total) * 100) : t.phase === "snapshot" ? null : 100;
  return (
    <tr data-testid={`pipeline-table-${name}`}>
      <td>{name}</td>
      <td>
        <span className={`badge phase ${t.phase}`} data-testid={`pipeline-phase-${name}`}>
          {PHASE_LABEL[t.phase] ?? t.phase}
        </span>
      </td>
      <td className="progress-col">
        {t.phase === "pending" ? (
          <span className="muted">—</span>
        ) : (
          <div className="progress" title={`${fmtInt(t.snapshotDone)} of ${fmtInt(total)}`}>
            <div
              className={`bar${pct === null ? " indeterminate" : ""}`}
              style={{ width: `${pct ?? 30}%` }}
              role="progressbar"
              aria-valuemin={0}
              aria-valuemax={total ?? undefined}
              aria-valuenow={t.snapshotDone}
              data-testid={`pipeline-progress-${name}`}
            />
            <span className="progress-label">
              {fmtInt(t.snapshotDone)}
              {total !== null && ` / ${fmtInt(total)}`}
            </span>
          </div>
        )}
      </td>
      <td className="num">{fmtRate(t.rowsPerSec)}</td>
      <td className="num">{fmtSeconds(t.lagSeconds)}</td>
      <td className="num">{fmtInt(t.inserts)}</td>
      <td className="num">{fmtInt(t.updates)}</td>
      <td className="num">{fmtInt(t.deletes)}</td>
      <td className="num">{fmtInt(t.deadLetters)}</td>
    </tr>
  );
}
