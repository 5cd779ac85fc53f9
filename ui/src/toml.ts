// Reads the pipeline TOML the shell returns into the draft the wizard edits.
import { parse } from "smol-toml";
import type { PipelineDraft } from "./types";

export function draftFromToml(text: string): PipelineDraft {
  const doc = parse(text) as unknown as PipelineDraft;
  return {
    ...doc,
    sources: doc.sources ?? {},
    targets: doc.targets ?? {},
  };
}
