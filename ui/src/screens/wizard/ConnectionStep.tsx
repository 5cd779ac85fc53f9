// Step 3: test the connection to the source (and the check list the targets step shares).
import { useEffect } from "react";
import * as backend from "../../backend";
import { useCall } from "../../useCall";
import type { CheckItem, PipelineDraft } from "../../types";
import { withText } from "./draft";

const OUTCOME_LABEL = { pass: "Passed", warn: "Warning", fail: "Failed" } as const;

/** The outcome of a connection test, one line per check, with the fix. */
export function CheckList({ checks, testid = "checks", itemTestid = "check" }: { checks: CheckItem[]; testid?: string; itemTestid?: string }) {
  return (
    <ul className="checks" data-testid={testid}>
      {checks.map((c, i) => (
        <li key={i} className={`check ${c.outcome}`} data-testid={`${itemTestid}-${c.outcome}`}>
          <span className={`badge ${c.outcome}`}>{OUTCOME_LABEL[c.outcome]}</span>
          <div>
            <strong>{c.name}</strong>
            <div>{c.detail}</div>
            {c.fix && <div className="fix">How to fix: {c.fix}</div>}
          </div>
        </li>
      ))}
    </ul>
  );
}

export function ConnectionStep({ path, draft, source }: { path: string; draft: PipelineDraft; source: string }) {
  const { result: checks, error, running, call } = useCall<CheckItem[]>();
  const run = () => call(() => withText(path, draft, (p) => backend.testConnection(p, source)));
  useEffect(() => {
    void run();
    // Test once on arrival; "Test again" repeats it.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <div className="stack">
      <div className="row">
        <button type="button" className="secondary" onClick={run} disabled={running} data-testid="test-connection">
          {running ? "Testing…" : "Test again"}
        </button>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {checks && <CheckList checks={checks} />}
      {checks && checks.length === 0 && <p className="muted">No checks for this source.</p>}
    </div>
  );
}
