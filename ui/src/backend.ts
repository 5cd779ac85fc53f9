// The one module that speaks to the Tauri shell. Every command of
// src-tauri/CONTRACT.md has a typed function here; nothing else in the UI
// imports @tauri-apps/*.
import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  CheckItem,
  DiscoveredTable,
  KindInfo,
  OpenedPipeline,
  PipelineDraft,
  PipelineStatus,
  PreviewResult,
  Problem,
  QueryResult,
  RedisKeys,
  Rendered,
  ReplayReport,
  RunningPipeline,
  SampleInfo,
  SearchResult,
  TableInfo,
  TargetDeadLetters,
  RepairResult,
  VerifyResult,
} from "./types";

/** A pipeline file as the commands take it: where it is (or will be) and its text. */
export type PipelineRef = { path: string; text: string };

export const connectorKinds = () => invoke<KindInfo[]>("connector_kinds");

export const createSample = (dir: string) => invoke<SampleInfo>("create_sample", { dir });

export const testConnection = (p: PipelineRef, source: string) =>
  invoke<CheckItem[]>("test_connection", { path: p.path, text: p.text, source });

export const discover = (p: PipelineRef, source: string) =>
  invoke<DiscoveredTable[]>("discover", { path: p.path, text: p.text, source });

export const renderPipeline = (draft: PipelineDraft) => invoke<Rendered>("render_pipeline", { draft });

export const validatePipeline = (p: PipelineRef) =>
  invoke<Problem[]>("validate_pipeline", { path: p.path, text: p.text });

export const openPipeline = (path: string) => invoke<OpenedPipeline>("open_pipeline", { path });

export const savePipeline = (p: PipelineRef) =>
  invoke<void>("save_pipeline", { path: p.path, text: p.text });

export const storeSecret = (name: string, value: string) =>
  invoke<string>("store_secret", { name, value });

export const previewTransform = (
  p: PipelineRef,
  transform: string,
  sql: string,
  limit: number,
  seed: number,
) =>
  invoke<PreviewResult>("preview_transform", {
    path: p.path,
    text: p.text,
    transform,
    sql,
    limit,
    seed,
  });

function statusChannel(onStatus: (s: PipelineStatus) => void): Channel<PipelineStatus> {
  const channel = new Channel<PipelineStatus>();
  channel.onmessage = onStatus;
  return channel;
}

export const startPipeline = (path: string, onStatus: (s: PipelineStatus) => void) =>
  invoke<void>("start_pipeline", { path, onStatus: statusChannel(onStatus) });

export const watchPipeline = (path: string, onStatus: (s: PipelineStatus) => void) =>
  invoke<void>("watch_pipeline", { path, onStatus: statusChannel(onStatus) });

export const stopPipeline = (path: string) => invoke<void>("stop_pipeline", { path });
export const pausePipeline = (path: string) => invoke<void>("pause_pipeline", { path });
export const resumePipeline = (path: string) => invoke<void>("resume_pipeline", { path });
export const dropPipeline = (path: string) => invoke<void>("drop_pipeline", { path });

export const runningPipelines = () => invoke<RunningPipeline[]>("running_pipelines");

export const listTables = (database: string) => invoke<TableInfo[]>("list_tables", { database });

export const runQuery = (database: string, sql: string, limit: number) =>
  invoke<QueryResult>("run_query", { database, sql, limit });

export const searchIndex = (p: PipelineRef, target: string, query: string, limit: number) =>
  invoke<SearchResult>("search_index", { path: p.path, text: p.text, target, query, limit });

export const redisKeys = (p: PipelineRef, target: string, table: string | null, limit: number) =>
  invoke<RedisKeys>("redis_keys", { path: p.path, text: p.text, target, table, limit });

/** Every target compared with its source; `running`: read differing keys again while changes land. */
export const verifyPipeline = (p: PipelineRef, running: boolean) =>
  invoke<VerifyResult>("verify_pipeline", { path: p.path, text: p.text, running });

/** Rewrites what a verification finds from the source into the targets, then verifies again (refused while it runs). */
export const repairPipeline = (p: PipelineRef) =>
  invoke<RepairResult>("repair_pipeline", { path: p.path, text: p.text });

export const dlqList = (p: PipelineRef) =>
  invoke<TargetDeadLetters[]>("dlq_list", { path: p.path, text: p.text });

export const dlqReplay = (p: PipelineRef, target: string) =>
  invoke<ReplayReport[]>("dlq_replay", { path: p.path, text: p.text, target });

export const dlqDiscard = (p: PipelineRef, target: string, ids: number[]) =>
  invoke<void>("dlq_discard", { path: p.path, text: p.text, target, ids });

// The native dialogs are shown by the shell: what the user picks there
// (its folder) is what the commands may use besides the workspace.

/** Native "open file" dialog for a pipeline TOML; null when cancelled. */
export const pickPipelineFile = () => invoke<string | null>("pick_pipeline_file");

/** Native "save file" dialog for a pipeline TOML; null when cancelled. */
export const pickSavePath = (defaultPath?: string) =>
  invoke<string | null>("pick_save_path", { defaultPath: defaultPath ?? null });

/** Native folder picker; null when cancelled. */
export const pickFolder = () => invoke<string | null>("pick_folder");

/** Native "open file" dialog for a DuckDB database; null when cancelled. */
export const pickDatabase = () => invoke<string | null>("pick_database");

/** Where new pipelines go unless the user picks another folder (the
 *  studio's workspace: `Syncline` in the documents or home folder). */
export const defaultWorkspaceDir = () => invoke<string>("workspace_dir");
