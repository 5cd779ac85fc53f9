// Browse the keys a pipeline's Redis target holds, table by table (by key template).
import { useEffect, useState } from "react";
import * as backend from "../backend";
import { VirtualGrid } from "../components/VirtualGrid";
import { errorText } from "../errors";
import { fmtInt } from "../format";
import type { RedisKeys } from "../types";

export type RedisTarget = { pipeline: backend.PipelineRef; target: string };

export function RedisBrowser({ redis }: { redis: RedisTarget }) {
  const [keys, setKeys] = useState<RedisKeys | null>(null);
  const [limit, setLimit] = useState(1000);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);

  const load = async (table: string | null) => {
    setLoading(true);
    setError(null);
    try {
      setKeys(await backend.redisKeys(redis.pipeline, redis.target, table, limit));
    } catch (e) {
      setKeys(null);
      setError(errorText(e));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    void load(null);
    // Reloads when another target is chosen.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [redis.pipeline.path, redis.target]);

  return (
    <div className="query" data-testid="redis-view">
      <h3>
        Keys in Redis target <code>{redis.target}</code>
      </h3>
      <div className="data-layout">
        <aside className="table-list" data-testid="redis-tables">
          <h3>Tables</h3>
          {keys?.tables.length === 0 && <p className="muted">No keys written yet.</p>}
          <ul>
            {keys?.tables.map((t) => (
              <li key={t.table}>
                <button
                  type="button"
                  className={t.table === keys.table ? "link current" : "link"}
                  onClick={() => load(t.table)}
                  title={t.template}
                  data-testid={`redis-table-${t.table}`}
                >
                  {t.table}
                </button>
                <span className="muted count">{fmtInt(t.keys)}</span>
                <div className="muted small">
                  <code>{t.template}</code>
                </div>
              </li>
            ))}
          </ul>
          <div className="row">
            <label className="inline">
              Keys
              <input
                type="number"
                className="narrow"
                min={1}
                value={limit}
                onChange={(e) => setLimit(Math.max(1, Number(e.target.value) || 1))}
                data-testid="redis-limit"
              />
            </label>
            <button type="button" className="secondary small" onClick={() => load(keys?.table ?? null)} disabled={loading} data-testid="redis-refresh">
              Refresh
            </button>
          </div>
        </aside>
        <div className="query">
          {keys?.table && (
            <p className="muted" data-testid="redis-meta">
              {fmtInt(keys.rows.length)} keys of {keys.table} in {Math.round(keys.elapsedMs)} ms
            </p>
          )}
          {error && (
            <p className="error" role="alert" data-testid="redis-error">
              {error}
            </p>
          )}
          {keys && keys.rows.length > 0 && <VirtualGrid columns={keys.columns} rows={keys.rows} height={400} testid="redis-grid" />}
        </div>
      </div>
    </div>
  );
}
