import { lazy, Suspense, useEffect, useState } from "react";
import * as backend from "./backend";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { RunsProvider, useRuns } from "./runs";
import { Wizard } from "./screens/wizard/Wizard";

// The first screen is the wizard; the others load when first shown.
const PipelineView = lazy(() => import("./screens/PipelineView").then((m) => ({ default: m.PipelineView })));
const DataView = lazy(() => import("./screens/DataView").then((m) => ({ default: m.DataView })));
const DeadLetters = lazy(() => import("./screens/DeadLetters").then((m) => ({ default: m.DeadLetters })));
const OpenExport = lazy(() => import("./screens/OpenExport").then((m) => ({ default: m.OpenExport })));
import { errorText } from "./errors";
import type { SearchTarget } from "./screens/IndexSearch";
import type { RedisTarget } from "./screens/RedisBrowser";

type View = "wizard" | "pipelines" | "data" | "dlq" | "files";

const NAV: { view: View; label: string }[] = [
  { view: "wizard", label: "New pipeline" },
  { view: "pipelines", label: "Pipelines" },
  { view: "data", label: "Data" },
  { view: "dlq", label: "Dead letters" },
  { view: "files", label: "Open / Export" },
];

function Shell() {
  const [view, setView] = useState<View>("wizard");
  const [pipeline, setPipeline] = useState<string | null>(null);
  const [database, setDatabase] = useState("");
  const [search, setSearch] = useState<SearchTarget | null>(null);
  const [redis, setRedis] = useState<RedisTarget | null>(null);
  const [dlqPath, setDlqPath] = useState("");
  const [wizardKey, setWizardKey] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const { start } = useRuns();

  // Pipelines go on in the background engine while the window is closed:
  // show them when it opens again.
  useEffect(() => {
    backend.runningPipelines().then(
      (list) => {
        if (list.length > 0) {
          setPipeline((p) => p ?? list[0].path);
          setView((v) => (v === "wizard" ? "pipelines" : v));
        }
      },
      () => undefined,
    );
  }, []);

  return (
    <div className="app">
      <nav className="sidebar" aria-label="Main">
        <div className="brand">Syncline Studio</div>
        {NAV.map((n) => (
          <button
            key={n.view}
            type="button"
            className={view === n.view ? "nav current" : "nav"}
            aria-current={view === n.view ? "page" : undefined}
            onClick={() => {
              if (n.view === "wizard" && view === "wizard") setWizardKey((k) => k + 1);
              setView(n.view);
            }}
            data-testid={`nav-${n.view}`}
          >
            {n.label}
          </button>
        ))}
      </nav>
      <main className="content">
        {error && (
          <p className="error banner" role="alert">
            {error}
          </p>
        )}
        <div hidden={view !== "wizard"}>
          <ErrorBoundary resetKey={wizardKey}>
          <Wizard
            key={wizardKey}
            onRun={async (path) => {
              setError(null);
              setPipeline(path);
              setView("pipelines");
              try {
                await start(path);
              } catch (e) {
                setError(errorText(e));
              }
            }}
          />
          </ErrorBoundary>
        </div>
        <ErrorBoundary resetKey={view}>
        <Suspense fallback={<p className="muted">Loading…</p>}>
        {view === "pipelines" && (
          <PipelineView
            selected={pipeline}
            onSelect={setPipeline}
            onOpenData={(db) => {
              setDatabase(db);
              setView("data");
            }}
            onOpenSearch={(t) => {
              setRedis(null);
              setSearch(t);
              setView("data");
            }}
            onOpenRedis={(t) => {
              setSearch(null);
              setRedis(t);
              setView("data");
            }}
            onOpenDeadLetters={(p) => {
              setDlqPath(p);
              setView("dlq");
            }}
          />
        )}
        {view === "data" && <DataView database={database} onDatabase={setDatabase} search={search} redis={redis} />}
        {view === "dlq" && <DeadLetters path={dlqPath} onPath={setDlqPath} />}
        {view === "files" && (
          <OpenExport
            onShowPipeline={(p) => {
              setPipeline(p);
              setView("pipelines");
            }}
          />
        )}
        </Suspense>
        </ErrorBoundary>
      </main>
    </div>
  );
}

export function App() {
  return (
    <RunsProvider>
      <Shell />
    </RunsProvider>
  );
}
