//! The pipeline status as the window receives it: camelCase copies of the
//! engine's status types, converted with `From` (the engine's own types
//! keep their snake_case JSON, which `syncline status --json` prints).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use syncline_engine::status as engine;
use ts_rs::TS;

/// Where a table is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not started.
    Pending,
    /// Initial copy under way.
    Snapshot,
    /// Copy done; applying changes made since it began.
    CatchUp,
    /// Following the change log live.
    Streaming,
    /// Finished (non-following run or full refresh).
    Done,
    /// Stopped for review.
    Paused,
}

impl From<engine::Phase> for Phase {
    fn from(p: engine::Phase) -> Self {
        match p {
            engine::Phase::Pending => Phase::Pending,
            engine::Phase::Snapshot => Phase::Snapshot,
            engine::Phase::CatchUp => Phase::CatchUp,
            engine::Phase::Streaming => Phase::Streaming,
            engine::Phase::Done => Phase::Done,
            engine::Phase::Paused => Phase::Paused,
        }
    }
}

/// What the pipeline as a whole is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    /// Connecting and opening.
    Starting,
    /// Moving data.
    Running,
    /// Shutting down with a final checkpoint.
    Stopping,
    /// Stopped cleanly.
    Stopped,
    /// Stopped by an error.
    Failed,
}

impl From<engine::PipelineState> for PipelineState {
    fn from(s: engine::PipelineState) -> Self {
        match s {
            engine::PipelineState::Starting => PipelineState::Starting,
            engine::PipelineState::Running => PipelineState::Running,
            engine::PipelineState::Stopping => PipelineState::Stopping,
            engine::PipelineState::Stopped => PipelineState::Stopped,
            engine::PipelineState::Failed => PipelineState::Failed,
        }
    }
}

/// One table's progress.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TableStatus {
    /// Life-cycle phase.
    pub phase: Phase,
    /// Rows the snapshot is expected to copy, where known.
    pub snapshot_total: Option<u64>,
    /// Rows of the snapshot committed to every target.
    pub snapshot_done: u64,
    /// Inserts committed.
    pub inserts: u64,
    /// Updates committed.
    pub updates: u64,
    /// Deletes committed.
    pub deletes: u64,
    /// Records sent to the dead-letter table.
    pub dead_letters: u64,
    /// Changes per second over the last few seconds.
    pub rows_per_sec: f64,
    /// Seconds between the source commit of the last applied change and now.
    pub lag_seconds: Option<f64>,
}

impl From<&engine::TableStatus> for TableStatus {
    fn from(t: &engine::TableStatus) -> Self {
        TableStatus {
            phase: t.phase.into(),
            snapshot_total: t.snapshot_total,
            snapshot_done: t.snapshot_done,
            inserts: t.inserts,
            updates: t.updates,
            deletes: t.deletes,
            dead_letters: t.dead_letters,
            rows_per_sec: t.rows_per_sec,
            lag_seconds: t.lag_seconds,
        }
    }
}

/// One target's progress: what it has committed on its own.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// Per source: the sequence number of the last batch it committed.
    pub committed_seq: BTreeMap<String, u64>,
    /// Per source: the position it last committed (source-defined JSON).
    #[ts(type = "Record<string, unknown>")]
    pub positions: BTreeMap<String, serde_json::Value>,
    /// Seconds between the source commit of the last change it committed
    /// and that commit.
    pub lag_seconds: Option<f64>,
    /// When it last committed.
    pub committed_at: Option<DateTime<Utc>>,
}

impl From<&engine::TargetStatus> for TargetStatus {
    fn from(t: &engine::TargetStatus) -> Self {
        TargetStatus {
            committed_seq: t.committed_seq.clone(),
            positions: t.positions.clone(),
            lag_seconds: t.lag_seconds,
            committed_at: t.committed_at,
        }
    }
}

/// A snapshot of the whole pipeline's status.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    /// Pipeline name.
    pub pipeline: String,
    /// Overall state.
    pub state: PipelineState,
    /// Per table, keyed `origin.table`.
    pub tables: BTreeMap<String, TableStatus>,
    /// Last position committed by every target, per source (source-defined
    /// JSON).
    #[ts(type = "Record<string, unknown>")]
    pub positions: BTreeMap<String, serde_json::Value>,
    /// Per target, by name.
    pub targets: BTreeMap<String, TargetStatus>,
    /// Bytes of change log the source retains for this pipeline, where known.
    pub retained_bytes: BTreeMap<String, u64>,
    /// Errors, newest last.
    pub errors: Vec<String>,
    /// When this snapshot was taken.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<&engine::PipelineStatus> for PipelineStatus {
    fn from(s: &engine::PipelineStatus) -> Self {
        PipelineStatus {
            pipeline: s.pipeline.clone(),
            state: s.state.into(),
            tables: s
                .tables
                .iter()
                .map(|(k, t)| (k.clone(), TableStatus::from(t)))
                .collect(),
            positions: s.positions.clone(),
            targets: s
                .targets
                .iter()
                .map(|(k, t)| (k.clone(), TargetStatus::from(t)))
                .collect(),
            retained_bytes: s.retained_bytes.clone(),
            errors: s.errors.clone(),
            updated_at: s.updated_at,
        }
    }
}
