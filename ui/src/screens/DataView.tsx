// Browse a DuckDB file's tables and run ad-hoc SQL over it.
import { useEffect, useState } from "react";
import * as backend from "../backend";
import { SqlEditor } from "../components/LazySqlEditor";
import { VirtualGrid } from "../components/VirtualGrid";
import { errorText } from "../errors";
import { fmtInt } from "../format";
import type { QueryResult, TableInfo } from "../types";
import { IndexSearch, type SearchTarget } from "./IndexSearch";
import { RedisBrowser, type RedisTarget } from "./RedisBrowser";

function qualified(t: TableInfo): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  return `${q(t.schema)}.${q(t.name)}`;
}

export function DataView({
  database,
  onDatabase,
  search = null,
  redis = null,
}: {
  database: string;
  onDatabase: (db: string) => void;
  /** A search index target to search, shown above the DuckDB browser. */
  search?: SearchTarget | null;
  /** A Redis target to browse, shown above the DuckDB browser. */
  redis?: RedisTarget | null;
}) {
  const [dbInput, setDbInput] = useState(database);
  const [tables, setTables] = useState<TableInfo[] | null>(null);
  const [sql, setSql] = useState("");
  const [limit, setLimit] = useState(100_000);
  const [result, setResult] = useState<QueryResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [running, setRunning] = useState(false);

  const load = async (db: string) => {
    setError(null);
    setTables(null);
    setResult(null);
    if (!db) return;
    try {
      setTables(await backend.listTables(db));
    } catch (e) {
      setError(errorText(e));
    }
  };

  useEffect(() => {
    setDbInput(database);
    void load(database);
  }, [database]);

  const run = async (text: string) => {
    setRunning(true);
    setError(null);
    try {
      setResult(await backend.runQuery(database, text, limit));
    } catch (e) {
      setResult(null);
      setError(errorText(e));
    } finally {
      setRunning(false);
    }
  };

  const completion: Record<string, string[]> = {};
  for (const t of tables ?? []) completion[t.name] = t.columns.map((c) => c.name);

  return (
    <section className="screen" data-testid="data-view">
      <header className="screen-header">
        <h1>Data</h1>
      </header>
      {search && <IndexSearch key={`${search.pipeline.path}:${search.target}:${search.query ?? ""}`} search={search} />}
      {redis && <RedisBrowser redis={redis} />}
      <div className="row">
        <input
          aria-label="DuckDB file"
          className="grow"
          value={dbInput}
          onChange={(e) => setDbInput(e.target.value)}
          placeholder="/path/to/target.duckdb"
          data-testid="data-db"
          spellCheck={false}
        />
        <button
          type="button"
          className="secondary"
          onClick={async () => {
            try {
              const p = await backend.pickDatabase();
              if (p) setDbInput(p);
            } catch (e) {
              setError(errorText(e));
            }
          }}
        >
          Browse…
        </button>
        <button
          type="button"
          onClick={() => (dbInput === database ? load(dbInput) : onDatabase(dbInput))}
          data-testid="data-open"
        >
          Open
        </button>
      </div>
      <div className="data-layout">
        <aside className="table-list" data-testid="data-tables">
          <h3>Tables</h3>
          {!tables && <p className="muted">Open a DuckDB file.</p>}
          {tables?.length === 0 && <p className="muted">No tables yet.</p>}
          <ul>
            {tables?.map((t) => (
              <li key={`${t.schema}.${t.name}`}>
                <button
                  type="button"
                  className="link"
                  onClick={() => {
                    const q = `SELECT * FROM ${qualified(t)}`;
                    setSql(q);
                    void run(q);
                  }}
                  data-testid={`data-table-${t.name}`}
                  title={t.columns.map((c) => `${c.name} ${c.dataType}`).join("\n")}
                >
                  {t.schema === "main" ? t.name : `${t.schema}.${t.name}`}
                </button>
                <span className="muted count">{fmtInt(t.rows)}</span>
              </li>
            ))}
          </ul>
          <button type="button" className="secondary small" onClick={() => load(database)} disabled={!database} data-testid="data-refresh">
            Refresh
          </button>
        </aside>
        <div className="query">
          <SqlEditor value={sql} onChange={setSql} tables={completion} testid="data-sql" minHeight={90} placeholderText="SELECT … (Run with the button)" />
          <div className="row">
            <button type="button" onClick={() => run(sql)} disabled={running || !database || !sql.trim()} data-testid="data-run">
              {running ? "Running…" : "Run"}
            </button>
            <label className="inline">
              Row limit
              <input
                type="number"
                className="narrow"
                min={1}
                value={limit}
                onChange={(e) => setLimit(Math.max(1, Number(e.target.value) || 1))}
                data-testid="data-limit"
              />
            </label>
            {result && (
              <span className="muted" data-testid="data-result-meta">
                {fmtInt(result.rows.length)} rows{result.truncated ? " (limit reached)" : ""} in {Math.round(result.elapsedMs)} ms
              </span>
            )}
          </div>
          {error && (
            <p className="error" role="alert" data-testid="data-error">
              {error}
            </p>
          )}
          {result && <VirtualGrid columns={result.columns} rows={result.rows} height={440} testid="data-grid" />}
        </div>
      </div>
    </section>
  );
}
