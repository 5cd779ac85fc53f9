// DTOs of the desktop command contract (src-tauri/CONTRACT.md). Engine types
// keep their snake_case serde names; DTOs defined in src-tauri are camelCase.

export type JsonSchema = {
  type?: string | string[];
  title?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  pattern?: string;
  format?: string;
  "x-secret"?: boolean;
  [key: string]: unknown;
};

export type BackendError = { code: string; message: string };

export type KindInfo = {
  kind: string;
  role: "source" | "target";
  title: string;
  description: string;
  schema: JsonSchema;
};

export type SampleInfo = { dir: string; sourceName: string; text: string };

export type CheckItem = {
  name: string;
  outcome: "pass" | "warn" | "fail";
  detail: string;
  fix: string | null;
};

export type DiscoveredColumn = {
  name: string;
  dataType: string;
  key: boolean;
  nullable: boolean;
};

export type DiscoveredTable = {
  name: string;
  columns: DiscoveredColumn[];
  modes: string[];
  defaultMode: string;
};

export type Problem = {
  line: number | null;
  column: number | null;
  field: string | null;
  message: string;
};

export type Rendered = { text: string; problems: Problem[] };

/** The pipeline file's structure as JSON. */
export type PipelineDraft = {
  name: string;
  description?: string | null;
  max_dead_letters?: number | null;
  sources: Record<string, Record<string, unknown>>;
  transforms?: Record<string, { input: string; sql: string; lookups?: string[] }>;
  targets: Record<string, Record<string, unknown>>;
};

export type OpenedPipeline = { path: string; text: string; draft: PipelineDraft };

export type ColumnInfo = { name: string; dataType: string };

export type SqlProblem = { message: string; line: number | null; column: number | null };

export type Op = "insert" | "update" | "delete" | "truncate" | string;

/** A recent change of the input table and what the transform makes of it. */
export type RecentChange = {
  op: Op;
  before: unknown;
  after: unknown;
  output: { op: Op; row: unknown }[];
  error: string | null;
};

export type PreviewResult = {
  columns: ColumnInfo[];
  key: string[];
  inputRows: number;
  outputRows: number;
  rows: unknown[][];
  recentChanges: RecentChange[];
  error: SqlProblem | null;
  elapsedMs: number;
};

export type Phase = "pending" | "snapshot" | "catch_up" | "streaming" | "done" | "paused";
export type PipelineState = "starting" | "running" | "stopping" | "stopped" | "failed";

export type TableStatus = {
  phase: Phase;
  snapshot_total: number | null;
  snapshot_done: number;
  inserts: number;
  updates: number;
  deletes: number;
  dead_letters: number;
  rows_per_sec: number;
  lag_seconds: number | null;
};

export type PipelineStatus = {
  pipeline: string;
  state: PipelineState;
  tables: Record<string, TableStatus>;
  positions: Record<string, unknown>;
  retained_bytes: Record<string, number>;
  errors: string[];
  updated_at: string | null;
};

export type RunningPipeline = {
  path: string;
  name: string;
  paused: boolean;
  status: PipelineStatus;
};

export type TableInfo = { schema: string; name: string; rows: number; columns: ColumnInfo[] };

export type QueryResult = {
  columns: ColumnInfo[];
  rows: unknown[][];
  truncated: boolean;
  elapsedMs: number;
};

export type KeptRow = {
  id: number;
  source: string;
  table: string;
  stage: string;
  origin: string;
  line: number | null;
  raw: string;
  reason: string;
  seq: number;
  recorded_at: string;
  kept: unknown | null;
};

export type TargetDeadLetters = { target: string; rows: KeptRow[] };

export type ReplayReport = {
  target: string;
  replayed: number[];
  superseded: number[];
  failed: [number, string][];
  not_replayable: number[];
};
