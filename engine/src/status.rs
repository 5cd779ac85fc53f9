//! The status stream: per-table phase, counts, rates and lag, published for
//! the CLI and the desktop app alike.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::batch::{Batch, BatchKind, Position};
use crate::model::{Op, TableId};

/// Where a table is in its life cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not started.
    #[default]
    Pending,
    /// Initial copy under way.
    Snapshot,
    /// Copy done; applying changes made since it began.
    CatchUp,
    /// Following the change log live.
    Streaming,
    /// Finished (non-following run or full refresh).
    Done,
    /// Stopped for review (e.g. an incompatible schema change).
    Paused,
}

/// What the pipeline as a whole is doing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    /// Connecting and opening.
    #[default]
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

/// One table's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// One target's progress: what it has committed, on its own (the pipeline's
/// `positions` are what every target has).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// Per source: the sequence number of the last batch it committed.
    pub committed_seq: BTreeMap<String, u64>,
    /// Per source: the position it last committed (source-defined JSON).
    pub positions: BTreeMap<String, serde_json::Value>,
    /// Seconds between the source commit of the last change it committed
    /// and that commit.
    pub lag_seconds: Option<f64>,
    /// When it last committed.
    pub committed_at: Option<DateTime<Utc>>,
}

/// A snapshot of the whole pipeline's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStatus {
    /// Pipeline name.
    pub pipeline: String,
    /// Overall state.
    pub state: PipelineState,
    /// Per table, keyed `origin.table`.
    pub tables: BTreeMap<String, TableStatus>,
    /// Last position committed by every target, per source (source-defined JSON).
    pub positions: BTreeMap<String, serde_json::Value>,
    /// Per target, by name.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetStatus>,
    /// Bytes of change log the source retains for this pipeline, where known.
    pub retained_bytes: BTreeMap<String, u64>,
    /// Errors, newest last.
    pub errors: Vec<String>,
    /// When this snapshot was taken.
    pub updated_at: Option<DateTime<Utc>>,
}

impl PipelineStatus {
    /// Total changes committed across tables.
    pub fn total_changes(&self) -> u64 {
        self.tables
            .values()
            .map(|t| t.inserts + t.updates + t.deletes)
            .sum()
    }
}

#[derive(Debug)]
struct Rate {
    window: Vec<(Instant, u64)>,
}

impl Rate {
    fn observe(&mut self, now: Instant, total: u64) -> f64 {
        self.window.push((now, total));
        let horizon = Duration::from_secs(5);
        while self.window.len() > 2 && now.duration_since(self.window[0].0) > horizon {
            self.window.remove(0);
        }
        let (t0, n0) = self.window[0];
        let secs = now.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            total.saturating_sub(n0) as f64 / secs
        }
    }
}

#[derive(Debug)]
struct Inner {
    status: PipelineStatus,
    rates: BTreeMap<String, Rate>,
    /// Derived tables that show the phase of their input: input -> derived.
    mirrors: BTreeMap<String, Vec<String>>,
}

/// Shared handle through which the runtime and connectors report status.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusHandle {
    inner: Arc<Mutex<Inner>>,
    tx: Arc<watch::Sender<PipelineStatus>>,
}

impl StatusHandle {
    /// A fresh status for `pipeline`.
    pub fn new(pipeline: &str) -> Self {
        let status = PipelineStatus {
            pipeline: pipeline.to_owned(),
            ..PipelineStatus::default()
        };
        let (tx, _) = watch::channel(status.clone());
        StatusHandle {
            inner: Arc::new(Mutex::new(Inner {
                status,
                rates: BTreeMap::new(),
                mirrors: BTreeMap::new(),
            })),
            tx: Arc::new(tx),
        }
    }

    /// Receives every published snapshot.
    pub fn subscribe(&self) -> watch::Receiver<PipelineStatus> {
        self.tx.subscribe()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> PipelineStatus {
        self.with(|s| s.status.clone())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Publishes the current snapshot to subscribers (the runtime does this
    /// a few times a second and on every state change).
    pub fn publish(&self) {
        let now = Instant::now();
        let snapshot = self.with(|inner| {
            let Inner { status, rates, .. } = inner;
            for (name, table) in status.tables.iter_mut() {
                let total = table.inserts + table.updates + table.deletes + table.dead_letters;
                let rate = rates
                    .entry(name.clone())
                    .or_insert_with(|| Rate { window: Vec::new() });
                table.rows_per_sec = rate.observe(now, total);
            }
            status.updated_at = Some(Utc::now());
            status.clone()
        });
        self.tx.send_replace(snapshot);
    }

    /// Sets the pipeline state and publishes.
    pub fn set_state(&self, state: PipelineState) {
        self.with(|s| s.status.state = state);
        self.publish();
    }

    /// Shows `derived` (a transform's output) in the phase of `input` from
    /// now on.
    pub fn mirror_phase(&self, input: &TableId, derived: &TableId) {
        self.with(|s| {
            let phase = s
                .status
                .tables
                .get(&input.to_string())
                .map(|t| t.phase)
                .unwrap_or_default();
            s.status
                .tables
                .entry(derived.to_string())
                .or_default()
                .phase = phase;
            s.mirrors
                .entry(input.to_string())
                .or_default()
                .push(derived.to_string());
        });
        self.publish();
    }

    /// Sets a table's phase (and that of tables derived from it) and
    /// publishes.
    pub fn set_phase(&self, table: &TableId, phase: Phase) {
        self.with(|s| {
            let name = table.to_string();
            s.status.tables.entry(name.clone()).or_default().phase = phase;
            for derived in s.mirrors.get(&name).cloned().unwrap_or_default() {
                s.status.tables.entry(derived).or_default().phase = phase;
            }
        });
        self.publish();
    }

    /// Records how many rows a table's snapshot will copy.
    pub fn set_snapshot_total(&self, table: &TableId, rows: u64) {
        self.with(|s| {
            s.status
                .tables
                .entry(table.to_string())
                .or_default()
                .snapshot_total = Some(rows);
        });
    }

    /// Records the change-log bytes a source retains.
    pub fn set_retained_bytes(&self, source: &str, bytes: u64) {
        self.with(|s| {
            s.status.retained_bytes.insert(source.to_owned(), bytes);
        });
    }

    /// Records that target `target` committed the batches of `source` up to
    /// `position`, the last of them committed at the source at
    /// `commit_time`.
    pub fn record_target(
        &self,
        target: &str,
        source: &str,
        position: &crate::batch::Position,
        commit_time: Option<DateTime<Utc>>,
    ) {
        let now = Utc::now();
        self.with(|s| {
            let t = s.status.targets.entry(target.to_owned()).or_default();
            t.committed_seq.insert(source.to_owned(), position.seq);
            t.positions
                .insert(source.to_owned(), position.state.clone());
            if let Some(at) = commit_time {
                t.lag_seconds = Some((now - at).num_milliseconds().max(0) as f64 / 1000.0);
            }
            t.committed_at = Some(now);
        });
    }

    /// Records an error message.
    pub fn record_error(&self, message: String) {
        self.with(|s| {
            s.status.errors.push(message);
            let excess = s.status.errors.len().saturating_sub(50);
            s.status.errors.drain(..excess);
        });
        self.publish();
    }

    /// Counts a batch that every target has committed.
    /// Counts what a batch changed once every target holds it.
    pub fn record_committed(&self, source: &str, tally: &Tally) {
        let lag = tally
            .commit_time
            .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        self.with(|s| {
            for (table, counts) in &tally.tables {
                let t = s.status.tables.entry(table.clone()).or_default();
                t.inserts += counts.inserts;
                t.updates += counts.updates;
                t.deletes += counts.deletes;
                t.dead_letters += counts.dead_letters;
                // Rows copied: a restated table's truncate is no row.
                if tally.snapshot {
                    t.snapshot_done += counts.inserts + counts.updates + counts.deletes;
                }
                if lag.is_some() && counts.changes > 0 {
                    t.lag_seconds = lag;
                }
            }
            s.status
                .positions
                .insert(source.to_owned(), tally.position.state.clone());
        });
    }
}

/// What one batch changed, per table: all the status needs of a batch that
/// waits for every target to commit it, so the batch itself (its rows) is
/// not kept that long.
#[derive(Debug, Clone)]
pub struct Tally {
    /// The batch's position.
    pub position: Position,
    /// When the source committed it, where known.
    pub commit_time: Option<DateTime<Utc>>,
    snapshot: bool,
    tables: Vec<(String, Counts)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    inserts: u64,
    updates: u64,
    deletes: u64,
    /// Changes of any kind, truncates included (they set the lag).
    changes: u64,
    dead_letters: u64,
}

impl Tally {
    /// Counts a batch's changes, column block and dead letters per table.
    pub fn of(batch: &Batch) -> Self {
        let mut tables: BTreeMap<&TableId, Counts> = BTreeMap::new();
        for change in &batch.changes {
            let c = tables.entry(&change.table.id).or_default();
            c.changes += 1;
            match change.op {
                Op::Insert => c.inserts += 1,
                Op::Update => c.updates += 1,
                Op::Delete => c.deletes += 1,
                Op::Truncate | Op::Prune => {}
            }
        }
        if let Some(block) = &batch.block {
            let c = tables.entry(&block.table.id).or_default();
            c.inserts += block.len() as u64;
            c.changes += block.len() as u64;
        }
        let mut dead: BTreeMap<String, u64> = BTreeMap::new();
        for dl in &batch.dead_letters {
            *dead.entry(dl.table.to_string()).or_default() += 1;
        }
        let mut named: BTreeMap<String, Counts> = tables
            .into_iter()
            .map(|(id, c)| (id.to_string(), c))
            .collect();
        for (table, n) in dead {
            named.entry(table).or_default().dead_letters += n;
        }
        Tally {
            position: batch.position.clone(),
            commit_time: batch.commit_time,
            snapshot: batch.kind == BatchKind::Snapshot,
            tables: named.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: &str, name: &str) -> TableId {
        TableId {
            origin: origin.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_derived_table_shows_its_inputs_phase() {
        let status = StatusHandle::new("p");
        let (input, derived, other) = (id("shop", "orders"), id("open", "open"), id("shop", "x"));
        status.set_phase(&input, Phase::Snapshot);
        status.mirror_phase(&input, &derived);
        assert_eq!(status.snapshot().tables["open.open"].phase, Phase::Snapshot);
        status.set_phase(&input, Phase::Streaming);
        status.set_phase(&other, Phase::Done);
        let now = status.snapshot();
        assert_eq!(now.tables["open.open"].phase, Phase::Streaming);
        assert_eq!(now.tables["shop.x"].phase, Phase::Done);
    }
}
