// Browse the keys a pipeline's Redis target holds, table by table (by key template).
import { useEffect, useState } from "react";
import * as backend from "../backend";
import { VirtualGrid } from "../components/VirtualGrid";
import { useCall } from "../useCall";
import { fmtInt } from "../format";
import type { RedisKeys } from "../types";

export type RedisTarget = { pipeline: backend.PipelineRef; target: string };

export function RedisBrowser({ redis }: { redis: RedisTarget }) {
  const [limit, setLimit] = useState(1000);
  const { result: keys, error, running: loading, call } = useCall<RedisKeys>();
  const load = (table: string | null) => call(() => backend.redisKeys(redis.pipeline, redis.target, table, limit), true);

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
