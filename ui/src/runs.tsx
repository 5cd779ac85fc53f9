// Running pipelines as the app sees them: the newest status of each, and a
// short history of throughput and lag for the live chart.
import { createContext, useCallback, useContext, useMemo, useRef, useState } from "react";
import * as backend from "./backend";
import type { PipelineStatus } from "./types";

export type Sample = { t: number; throughput: number; lag: number | null };

export type Run = { path: string; status: PipelineStatus | null; history: Sample[]; paused: boolean };

type Runs = {
  runs: Record<string, Run>;
  start: (path: string) => Promise<void>;
  watch: (path: string, paused?: boolean) => Promise<void>;
  resume: (path: string) => Promise<void>;
  setPaused: (path: string, paused: boolean) => void;
  forget: (path: string) => void;
};

const RunsContext = createContext<Runs | null>(null);

const HISTORY = 300;

export function summarize(status: PipelineStatus): Sample {
  let throughput = 0;
  let lag: number | null = null;
  for (const t of Object.values(status.tables)) {
    throughput += t.rowsPerSec;
    if (t.lagSeconds !== null && t.lagSeconds !== undefined) lag = Math.max(lag ?? 0, t.lagSeconds);
  }
  const t = status.updatedAt ? Date.parse(status.updatedAt) / 1000 : Date.now() / 1000;
  return { t, throughput, lag };
}

export function RunsProvider({ children }: { children: React.ReactNode }) {
  const [runs, setRuns] = useState<Record<string, Run>>({});
  const subscribed = useRef(new Set<string>());

  const onStatus = useCallback((path: string) => {
    return (status: PipelineStatus) =>
      setRuns((all) => {
        const prev = all[path] ?? { path, status: null, history: [], paused: false };
        const history = [...prev.history, summarize(status)].slice(-HISTORY);
        return { ...all, [path]: { ...prev, status, history } };
      });
  }, []);

  const ensure = (path: string, paused: boolean) =>
    setRuns((all) => ({ ...all, [path]: { ...(all[path] ?? { path, status: null, history: [] }), paused } }));

  const start = useCallback(
    async (path: string) => {
      ensure(path, false);
      subscribed.current.add(path);
      await backend.startPipeline(path, onStatus(path));
    },
    [onStatus],
  );

  const resume = useCallback(
    async (path: string) => {
      ensure(path, false);
      await backend.resumePipeline(path);
      // A paused run's subscribers keep their channel; subscribe only if this window has none.
      if (!subscribed.current.has(path)) {
        subscribed.current.add(path);
        await backend.watchPipeline(path, onStatus(path));
      }
    },
    [onStatus],
  );

  const watch = useCallback(
    async (path: string, paused = false) => {
      ensure(path, paused);
      if (subscribed.current.has(path)) return;
      subscribed.current.add(path);
      await backend.watchPipeline(path, onStatus(path));
    },
    [onStatus],
  );

  const setPaused = useCallback((path: string, paused: boolean) => ensure(path, paused), []);

  const forget = useCallback((path: string) => {
    subscribed.current.delete(path);
    setRuns((all) => {
      const next = { ...all };
      delete next[path];
      return next;
    });
  }, []);

  const value = useMemo(() => ({ runs, start, watch, resume, setPaused, forget }), [runs, start, watch, resume, setPaused, forget]);
  return <RunsContext.Provider value={value}>{children}</RunsContext.Provider>;
}

export function useRuns(): Runs {
  const ctx = useContext(RunsContext);
  if (!ctx) throw new Error("useRuns outside RunsProvider");
  return ctx;
}
