// Step 8: save the pipeline file, then run it.
import { useState } from "react";
import * as backend from "../../backend";
import { errorText } from "../../errors";
import type { PipelineDraft } from "../../types";

export function SaveStep({ path, draft, onRun }: { path: string; draft: PipelineDraft; onRun: (path: string) => void }) {
  const [target, setTarget] = useState(path);
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const rendered = await backend.renderPipeline(draft);
      await backend.savePipeline({ path: target, text: rendered.text });
      setSaved(target);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  const browse = async () => {
    try {
      const chosen = await backend.pickSavePath(target);
      if (chosen) setTarget(chosen);
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <div className="stack">
      <div className="field">
        <label htmlFor="save-path">Pipeline file</label>
        <div className="row">
          <input id="save-path" data-testid="save-path" value={target} onChange={(e) => setTarget(e.target.value)} spellCheck={false} />
          <button type="button" className="secondary" onClick={browse} data-testid="save-browse">
            Browse…
          </button>
          <button type="button" onClick={save} disabled={busy} data-testid="save-button">
            Save
          </button>
        </div>
        <p className="help">Relative paths inside the file resolve against its folder: keep it beside the data it names.</p>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {saved && (
        <p className="ok" data-testid="save-status">
          Saved to {saved}
        </p>
      )}
      <div className="row">
        <button type="button" disabled={!saved || saved !== target} onClick={() => onRun(target)} data-testid="run-button">
          Run
        </button>
        {!saved && <span className="muted">Save the pipeline to run it.</span>}
      </div>
    </div>
  );
}
