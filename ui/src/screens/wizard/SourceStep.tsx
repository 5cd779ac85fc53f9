// Step 1: the pipeline's name, description, folder and source kind.
import { useState } from "react";
import * as backend from "../../backend";
import { errorText } from "../../errors";
import type { KindInfo } from "../../types";
import { SAMPLE_KIND, type StepProps } from "./state";

export function SourceStep({ state, update, kinds, kindsError }: StepProps & { kinds: KindInfo[]; kindsError: string | null }) {
  const options = [
    {
      kind: SAMPLE_KIND,
      title: "Bundled sample shop",
      description: "An online shop's customers, products and orders as files, written into the folder below.",
    },
    ...kinds,
  ];
  const [folderError, setFolderError] = useState<string | null>(null);
  const pickFolder = async () => {
    setFolderError(null);
    try {
      const dir = await backend.pickFolder();
      if (dir) update({ folder: dir });
    } catch (e) {
      setFolderError(errorText(e));
    }
  };
  return (
    <div className="stack">
      <div className="field">
        <label htmlFor="wizard-name">Pipeline name</label>
        <input
          id="wizard-name"
          data-testid="wizard-name"
          value={state.name}
          onChange={(e) => update({ name: e.target.value })}
          spellCheck={false}
        />
        <p className="help">Letters, digits, _ and -. It names the pipeline's file, checkpoints and state.</p>
      </div>
      <div className="field">
        <label htmlFor="wizard-description">Description</label>
        <input
          id="wizard-description"
          data-testid="wizard-description"
          value={state.description}
          onChange={(e) => update({ description: e.target.value })}
          placeholder="What the pipeline is for (optional)"
        />
      </div>
      <div className="field">
        <label htmlFor="wizard-folder">Folder</label>
        <div className="row">
          <input
            id="wizard-folder"
            data-testid="wizard-folder"
            value={state.folder}
            onChange={(e) => update({ folder: e.target.value })}
            spellCheck={false}
          />
          <button type="button" className="secondary" onClick={pickFolder} data-testid="wizard-folder-browse">
            Browse…
          </button>
        </div>
        {folderError && (
          <p className="error" role="alert" data-testid="wizard-folder-error">
            {folderError}
          </p>
        )}
        <p className="help">
          Where the pipeline file is saved; paths inside it are relative to this folder. The sample shop's files are
          written here too.
        </p>
      </div>
      <fieldset className="kinds">
        <legend>Source kind</legend>
        {kindsError && <p className="error">Connector kinds could not be loaded: {kindsError}</p>}
        {options.map((k) => (
          <label key={k.kind} className={`kind-card${state.kind === k.kind ? " selected" : ""}`} data-testid={`kind-${k.kind}`}>
            <input type="radio" name="kind" value={k.kind} checked={state.kind === k.kind} onChange={() => update({ kind: k.kind })} />
            <span>
              <strong>{k.title}</strong>
              <span className="muted">{k.description}</span>
            </span>
          </label>
        ))}
      </fieldset>
    </div>
  );
}
