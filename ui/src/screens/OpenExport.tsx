// Open a pipeline file, read it, and save it elsewhere unchanged.
import { useState } from "react";
import * as backend from "../backend";
import { PipelineFileRow } from "../components/PipelineFileRow";
import { TomlView } from "../components/TomlView";
import { errorText } from "../errors";
import type { OpenedPipeline } from "../types";

export function OpenExport({ onShowPipeline }: { onShowPipeline: (path: string) => void }) {
  const [pathInput, setPathInput] = useState("");
  const [opened, setOpened] = useState<OpenedPipeline | null>(null);
  const [exportPath, setExportPath] = useState("");
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const openPath = async (p: string) => {
    setError(null);
    setSaved(null);
    try {
      const o = await backend.openPipeline(p);
      setOpened(o);
      setPathInput(o.path);
      setExportPath(o.path);
    } catch (e) {
      setOpened(null);
      setError(errorText(e));
    }
  };

  return (
    <section className="screen" data-testid="files-view">
      <header className="screen-header">
        <h1>Open and export</h1>
      </header>
      <PipelineFileRow
        label="Pipeline file to open"
        value={pathInput}
        onChange={setPathInput}
        onPicked={openPath}
        testId="open-path"
        browseTestId="open-browse"
        onError={setError}
      >
        <button type="button" onClick={() => openPath(pathInput)} data-testid="open-button">
          Open
        </button>
      </PipelineFileRow>
      {error && (
        <p className="error banner" role="alert" data-testid="files-error">
          {error}
        </p>
      )}
      {opened && (
        <>
          <div className="row spread">
            <h2>{opened.draft.name}</h2>
            <button type="button" className="secondary" onClick={() => onShowPipeline(opened.path)} data-testid="open-show-pipeline">
              Show pipeline
            </button>
          </div>
          <TomlView text={opened.text} problems={[]} testid="open-text" />
          <div className="field">
            <label htmlFor="export-path">Export to</label>
            <div className="row">
              <input
                id="export-path"
                className="grow"
                value={exportPath}
                onChange={(e) => setExportPath(e.target.value)}
                data-testid="export-path"
                spellCheck={false}
              />
              <button
                type="button"
                className="secondary"
                onClick={async () => {
                  try {
                    const p = await backend.pickSavePath(exportPath);
                    if (p) setExportPath(p);
                  } catch (e) {
                    setError(errorText(e));
                  }
                }}
                data-testid="export-browse"
              >
                Browse…
              </button>
              <button
                type="button"
                onClick={async () => {
                  setError(null);
                  try {
                    await backend.savePipeline({ path: exportPath, text: opened.text });
                    setSaved(exportPath);
                  } catch (e) {
                    setError(errorText(e));
                  }
                }}
                data-testid="export-button"
              >
                Save
              </button>
            </div>
            <p className="help">Written byte for byte as opened. Relative paths inside resolve against the new folder.</p>
          </div>
          {saved && (
            <p className="ok" data-testid="export-status">
              Saved to {saved}
            </p>
          )}
        </>
      )}
    </section>
  );
}
