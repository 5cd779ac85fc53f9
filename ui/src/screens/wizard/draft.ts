// From the wizard's state to the pipeline draft, its file path, and the
// rendered pipeline the backend commands take.
import * as backend from "../../backend";
import { join } from "../../paths";
import type { PipelineDraft } from "../../types";
import type { WizardState } from "./state";

export function pipelinePath(s: WizardState): string {
  return join(s.folder, `${s.name || "pipeline"}.toml`);
}

export function buildDraft(s: WizardState): PipelineDraft {
  const draft: PipelineDraft = {
    name: s.name,
    ...(s.description ? { description: s.description } : {}),
    sources: { [s.sourceName]: { kind: s.sourceKind, ...s.source } },
    targets: s.targets,
  };
  const t = s.transform;
  if (t.enabled && t.name && t.input && t.sql.trim()) {
    draft.transforms = {
      [t.name]: { input: t.input, sql: t.sql, ...(t.lookups.length ? { lookups: t.lookups } : {}) },
    };
  }
  return draft;
}

/** Renders the draft to TOML, then runs `f` on the pipeline as the commands take it. */
export async function withText<T>(path: string, draft: PipelineDraft, f: (p: backend.PipelineRef) => Promise<T>): Promise<T> {
  const rendered = await backend.renderPipeline(draft);
  return f({ path, text: rendered.text });
}
