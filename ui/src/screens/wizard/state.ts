// The wizard's state: what has been entered so far, kept across Back and Next.
import type { DiscoveredTable } from "../../types";

export const STEPS = ["Source", "Settings", "Connection", "Tables", "Transform", "Targets", "Review", "Save & run"];

export const SAMPLE_KIND = "sample";

export type TableChoice = { include: boolean; mode: string; columns: string[] };

export type TransformState = { enabled: boolean; name: string; input: string; sql: string; lookups: string[] };

export type WizardState = {
  name: string;
  description: string;
  kind: string | null;
  folder: string;
  sourceName: string;
  source: Record<string, unknown>;
  sourceKind: string;
  targets: Record<string, Record<string, unknown>>;
  tables: DiscoveredTable[] | null;
  choices: Record<string, TableChoice>;
  transform: TransformState;
  /** `kind|folder` the source was last set up for (Back then Next keeps it). */
  prepared: string;
};

export const initialState: WizardState = {
  name: "shop",
  description: "",
  kind: null,
  folder: "",
  sourceName: "",
  source: {},
  sourceKind: "",
  targets: {},
  tables: null,
  choices: {},
  transform: { enabled: true, name: "", input: "", sql: "", lookups: [] },
  prepared: "",
};

export type StepProps = { state: WizardState; update: (p: Partial<WizardState>) => void };
