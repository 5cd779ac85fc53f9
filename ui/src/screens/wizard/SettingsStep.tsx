// Step 2: the source's settings, drawn from its connector's schema.
import * as backend from "../../backend";
import { SchemaForm } from "../../components/SchemaForm";
import type { KindInfo } from "../../types";
import type { StepProps } from "./state";

export function SettingsStep({ state, update, info, showAll }: StepProps & { info?: KindInfo; showAll: boolean }) {
  if (!info) return <p className="error">No form for source kind “{state.sourceKind}”.</p>;
  return (
    <div className="stack">
      <p className="muted">{info.description}</p>
      <div className="field">
        <label htmlFor="wizard-source-name">Source name</label>
        <input
          id="wizard-source-name"
          data-testid="wizard-source-name"
          value={state.sourceName}
          onChange={(e) => update({ sourceName: e.target.value })}
        />
        <p className="help">How transforms and targets refer to this source.</p>
      </div>
      <SchemaForm
        schema={info.schema}
        value={state.source}
        onChange={(source) => update({ source, tables: null })}
        hide={["kind"]}
        showAll={showAll}
        testid="source"
        onStoreSecret={(name, value) => backend.storeSecret(`syncline/${state.name}-${state.sourceName}-${name}`, value)}
      />
    </div>
  );
}
