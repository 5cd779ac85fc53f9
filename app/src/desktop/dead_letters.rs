//! The dead-letter queue as the studio shows it: camelCase copies of the
//! kept rows, converted with `From` (the CLI prints the engine's own).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use syncline_engine::connector as engine_connector;
use syncline_engine::model as engine;
use ts_rs::TS;

use super::Failure;
use crate::{Pipeline, dlq};

/// Identifies a table: the source (or transform) that produces it, and its
/// name there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct TableId {
    /// Name of the source or transform in the pipeline file.
    pub origin: String,
    /// Table name.
    pub name: String,
}

impl From<&engine::TableId> for TableId {
    fn from(t: &engine::TableId) -> Self {
        TableId {
            origin: t.origin.clone(),
            name: t.name.clone(),
        }
    }
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A new row.
    Insert,
    /// A changed row.
    Update,
    /// A removed row.
    Delete,
    /// Every row of the table removed.
    Truncate,
    /// Rows gone at the source, found by a key scan.
    Prune,
}

impl From<engine::Op> for Op {
    fn from(op: engine::Op) -> Self {
        match op {
            engine::Op::Insert => Op::Insert,
            engine::Op::Update => Op::Update,
            engine::Op::Delete => Op::Delete,
            engine::Op::Truncate => Op::Truncate,
            engine::Op::Prune => Op::Prune,
        }
    }
}

/// The step that rejected a kept row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterStage {
    /// Reading the source.
    Read,
    /// A SQL transform.
    Transform,
    /// The target (a value that does not fit its column).
    Target,
}

impl From<engine::DeadLetterStage> for DeadLetterStage {
    fn from(s: engine::DeadLetterStage) -> Self {
        match s {
            engine::DeadLetterStage::Read => DeadLetterStage::Read,
            engine::DeadLetterStage::Transform => DeadLetterStage::Transform,
            engine::DeadLetterStage::Target => DeadLetterStage::Target,
        }
    }
}

/// The change kept with a row, for replay.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct KeptChange {
    /// The transform that rejected it, if one did.
    pub transform: Option<String>,
    /// The table the change is a change of.
    pub table: TableId,
    /// What happened.
    pub op: Op,
    /// Column names of `before` and `after`.
    pub columns: Vec<String>,
    /// Row before the change, where known (values as JSON).
    #[ts(type = "Array<unknown> | null")]
    pub before: Option<serde_json::Value>,
    /// Row after the change (values as JSON).
    #[ts(type = "Array<unknown> | null")]
    pub after: Option<serde_json::Value>,
    /// The key values, as JSON text.
    pub key: String,
}

impl From<&engine::KeptChange> for KeptChange {
    fn from(k: &engine::KeptChange) -> Self {
        let row = |r: &engine::Row| serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
        KeptChange {
            transform: k.transform.clone(),
            table: (&k.table).into(),
            op: k.op.into(),
            columns: k.columns.clone(),
            before: k.before.as_ref().map(row),
            after: k.after.as_ref().map(row),
            key: k.key.clone(),
        }
    }
}

/// A row kept in a target's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct KeptRow {
    /// Its number, unique within the pipeline and target.
    pub id: u64,
    /// The source it came from.
    pub source: String,
    /// The table (or transform output) it was meant for.
    pub table: String,
    /// The step that rejected it.
    pub stage: DeadLetterStage,
    /// Where it came from (file, transaction, transform).
    pub origin: String,
    /// Line or record number within `origin`, where it has one.
    pub line: Option<u64>,
    /// The record as read, or the row as JSON.
    pub raw: String,
    /// Why it was rejected.
    pub reason: String,
    /// The source position of the batch it came with.
    pub seq: u64,
    /// When it was kept.
    pub recorded_at: DateTime<Utc>,
    /// The change, for replay (`None`: fix it at its origin instead).
    pub kept: Option<KeptChange>,
}

impl From<&engine_connector::KeptRow> for KeptRow {
    fn from(r: &engine_connector::KeptRow) -> Self {
        KeptRow {
            id: r.id,
            source: r.source.clone(),
            table: r.table.clone(),
            stage: r.stage.into(),
            origin: r.origin.clone(),
            line: r.line,
            raw: r.raw.clone(),
            reason: r.reason.clone(),
            seq: r.seq,
            recorded_at: r.recorded_at,
            kept: r.kept.as_ref().map(KeptChange::from),
        }
    }
}

/// One target's kept rows.
#[derive(Debug, Clone, Serialize, TS)]
pub struct TargetDeadLetters {
    /// Target name.
    pub target: String,
    /// Kept rows, oldest first.
    pub rows: Vec<KeptRow>,
}

impl From<&dlq::TargetDeadLetters> for TargetDeadLetters {
    fn from(t: &dlq::TargetDeadLetters) -> Self {
        TargetDeadLetters {
            target: t.target.clone(),
            rows: t.rows.iter().map(KeptRow::from).collect(),
        }
    }
}

/// What a replay did in one target.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Target name.
    pub target: String,
    /// Rows applied and removed from the queue.
    pub replayed: Vec<u64>,
    /// Rows removed because a later kept row of the same key was applied in
    /// their place.
    pub superseded: Vec<u64>,
    /// Rows that still fail, with why; they stay.
    pub failed: Vec<(u64, String)>,
    /// Rows that cannot be replayed (fix them at their origin); they stay.
    pub not_replayable: Vec<u64>,
}

impl From<&dlq::ReplayReport> for ReplayReport {
    fn from(r: &dlq::ReplayReport) -> Self {
        ReplayReport {
            target: r.target.clone(),
            replayed: r.replayed.clone(),
            superseded: r.superseded.clone(),
            failed: r.failed.clone(),
            not_replayable: r.not_replayable.clone(),
        }
    }
}

fn parsed(path: &Path, text: String) -> Result<Pipeline, Failure> {
    crate::parse(path, text).map_err(|e| Failure::from(&e))
}

/// Every target's kept rows.
pub async fn dlq_list(path: &Path, text: String) -> Result<Vec<TargetDeadLetters>, Failure> {
    let all = dlq::list(&parsed(path, text)?, None).await?;
    Ok(all.iter().map(TargetDeadLetters::from).collect())
}

/// Replays every kept row of `target` (all targets when `None`).
pub async fn dlq_replay(
    path: &Path,
    text: String,
    target: Option<&str>,
) -> Result<Vec<ReplayReport>, Failure> {
    let reports = dlq::replay(&parsed(path, text)?, target, None).await?;
    Ok(reports.iter().map(ReplayReport::from).collect())
}

/// Removes kept rows `ids` of `target` without applying them; returns how
/// many were removed.
pub async fn dlq_discard(
    path: &Path,
    text: String,
    target: &str,
    ids: &[u64],
) -> Result<u64, Failure> {
    let removed = dlq::discard(&parsed(path, text)?, Some(target), Some(ids)).await?;
    Ok(removed.iter().map(|(_, n)| n).sum())
}
