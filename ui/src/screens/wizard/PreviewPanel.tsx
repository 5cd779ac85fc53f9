// A transform preview: output schema and rows, recent changes and what the target gets.
import { VirtualGrid } from "../../components/VirtualGrid";
import { fmtInt } from "../../format";
import type { PreviewResult, RecentChange } from "../../types";

export function PreviewPanel({ result }: { result: PreviewResult }) {
  return (
    <div className="preview" data-testid="preview">
      {result.error && (
        <p className="error" role="alert" data-testid="preview-error">
          {result.error.line !== null && `Line ${result.error.line}, column ${result.error.column ?? 1}: `}
          {result.error.message}
        </p>
      )}
      <p className="muted" data-testid="preview-counts">
        {fmtInt(result.inputRows)} input rows sampled → {fmtInt(result.outputRows)} output rows, in{" "}
        {Math.round(result.elapsedMs)} ms
      </p>
      {!result.error && (
        <div className="preview-body">
          <div className="output-schema" data-testid="preview-schema">
            <h3>Output schema</h3>
            <table className="plain">
              <tbody>
                {result.columns.map((c) => (
                  <tr key={c.name}>
                    <td>{c.name}</td>
                    <td className="col-type">{c.dataType}</td>
                    <td>{result.key.includes(c.name) && <span className="badge key">key</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="output-rows">
            <VirtualGrid columns={result.columns} rows={result.rows} height={300} testid="preview-grid" />
          </div>
        </div>
      )}
      {!result.error && result.recentChanges.length > 0 && <RecentChanges changes={result.recentChanges} />}
    </div>
  );
}

const json = (v: unknown) => (v === null || v === undefined ? "" : JSON.stringify(v));

function RecentChanges({ changes }: { changes: RecentChange[] }) {
  return (
    <div className="recent-changes" data-testid="preview-changes">
      <h3>Recent changes and what the target gets</h3>
      <table className="status-table">
        <thead>
          <tr>
            <th>Change</th>
            <th>Row</th>
            <th>Target gets</th>
          </tr>
        </thead>
        <tbody>
          {changes.map((c, i) => (
            <tr key={i}>
              <td>
                <span className={`badge op ${c.op}`}>{c.op}</span>
              </td>
              <td>
                <code className="raw">{json(c.after ?? c.before)}</code>
              </td>
              <td>
                {c.error ? (
                  <span className="error">Dead letter: {c.error}</span>
                ) : c.output.length === 0 ? (
                  <span className="muted">nothing (filtered out)</span>
                ) : (
                  c.output.map((o, j) => (
                    <div key={j}>
                      <span className={`badge op ${o.op}`}>{o.op}</span> <code className="raw">{json(o.row)}</code>
                    </div>
                  ))
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
