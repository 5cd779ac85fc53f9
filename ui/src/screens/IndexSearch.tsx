// Search a pipeline's search index target; results as a grid.
import { useEffect, useState } from "react";
import * as backend from "../backend";
import { VirtualGrid } from "../components/VirtualGrid";
import { useCall } from "../useCall";
import { fmtInt } from "../format";
import type { SearchResult } from "../types";

/** A search index target, and a query to run at once (from the graph's search box). */
export type SearchTarget = { pipeline: backend.PipelineRef; target: string; query?: string };

export function IndexSearch({ search }: { search: SearchTarget }) {
  const [query, setQuery] = useState(search.query ?? "");
  const [limit, setLimit] = useState(100);
  const { result, error, running, call } = useCall<SearchResult>();
  const run = (q: string = query) => call(() => backend.searchIndex(search.pipeline, search.target, q, limit), true);

  // A query handed over (from the graph's search box) runs at once.
  useEffect(() => {
    if (search.query?.trim()) void run(search.query);
    // Only when opened: the key of this view changes with the query.
  }, []);

  return (
    <div className="query" data-testid="search-view">
      <h3>
        Search index <code>{search.target}</code>
      </h3>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <input
          aria-label="Search query"
          className="grow"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
          placeholder='words, title:"exact phrase", price:[10 TO 20], _table:products AND red'
          data-testid="search-query"
          spellCheck={false}
        />
        <label className="inline">
          Results
          <input
            type="number"
            className="narrow"
            min={1}
            value={limit}
            onChange={(e) => setLimit(Math.max(1, Number(e.target.value) || 1))}
            data-testid="search-limit"
          />
        </label>
        <button type="submit" disabled={running || !query.trim()} data-testid="search-run">
          {running ? "Searching…" : "Search"}
        </button>
      </form>
      {result && (
        <p className="muted" data-testid="search-meta">
          {fmtInt(result.rows.length)} of {fmtInt(result.total)} matching documents in {Math.round(result.elapsedMs)} ms
        </p>
      )}
      {error && (
        <p className="error" role="alert" data-testid="search-error">
          {error}
        </p>
      )}
      {result && <VirtualGrid columns={result.columns} rows={result.rows} height={440} testid="search-grid" />}
    </div>
  );
}
