// DTOs of the desktop command contract (src-tauri/CONTRACT.md): camelCase,
// generated from the application layer's Rust types (app/src/desktop).

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

// Generated from the Rust types (ts-rs, `cargo test -p syncline-desktop`).
import type {
  Failure,
  KindInfo as GeneratedKindInfo,
  OpenedPipeline as GeneratedOpenedPipeline,
} from "./bindings";

export type {
  CheckItem,
  ColumnInfo,
  DeadLetterStage,
  DiscoveredColumn,
  DiscoveredTable,
  KeptChange,
  KeptRow,
  Op,
  OutputChange,
  Phase,
  PipelineState,
  PipelineStatus,
  PreviewResult,
  Problem,
  QueryResult,
  RecentChange,
  RedisKeys,
  Rendered,
  ReplayReport,
  RunningPipeline,
  SampleInfo,
  SearchResult,
  SqlProblem,
  TableInfo,
  TableStatus,
  TargetDeadLetters,
  RepairResult,
  TargetVerdict,
  VerifyResult,
} from "./bindings";

/** What a command rejects with. */
export type BackendError = Failure;

/** A connector kind, its schema typed for the form renderer. */
export type KindInfo = Omit<GeneratedKindInfo, "schema"> & { schema: JsonSchema };

/** The pipeline file's structure as JSON (what `render_pipeline` takes). */
export type PipelineDraft = {
  name: string;
  description?: string | null;
  max_dead_letters?: number | null;
  sources: Record<string, Record<string, unknown>>;
  transforms?: Record<string, { input: string; sql: string; lookups?: string[] }>;
  targets: Record<string, Record<string, unknown>>;
};

/** An opened pipeline file, its draft typed. */
export type OpenedPipeline = Omit<GeneratedOpenedPipeline, "draft"> & { draft: PipelineDraft };
