//! The contracts between the runtime and connectors.
//!
//! # Delivery contract
//!
//! * **Order.** A source emits batches in source commit order. The runtime
//!   delivers them to every sink in that order; a sink applies them in order.
//! * **Atomicity.** A sink applies one batch as one unit where the target has
//!   transactions: all of its changes, its dead letters and its position, or
//!   nothing.
//! * **Durability before acknowledgement.** [`Sink::write`] returns only once
//!   the batch and its position are durable. The runtime acknowledges a
//!   position to the source (on [`SourceContext::acknowledged`]) only after
//!   *every* sink that receives the source has returned from `write` for it.
//!   A source may release upstream resources (confirm an LSN, forget a file
//!   manifest) only up to an acknowledged position.
//! * **Redelivery.** After a crash the source resumes from the lowest position
//!   any sink holds, so a sink may see batches it already has. Such a batch has
//!   `position.seq` at or below the sink's stored checkpoint and must be
//!   skipped. Transactional sinks therefore give exactly-once effect; sinks
//!   without transactions must make every write idempotent by key
//!   (at-least-once delivery, exactly-once final state).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use chrono::{DateTime, Utc};

use crate::batch::{Batch, Position};
use crate::model::{Change, DeadLetter, DeadLetterStage, KeptChange, Row, TableId, TableSchema};
use crate::status::StatusHandle;
use crate::verify::RowReader;

/// Outcome of one pre-flight check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked, e.g. "folder is readable".
    pub name: String,
    /// Passed, warning or failed.
    pub outcome: CheckOutcome,
    /// What was found.
    pub detail: String,
    /// How to fix it, in plain words, when it did not pass.
    pub fix: Option<String>,
}

/// Result of a [`Check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Fine.
    Pass,
    /// Works, but worth attention.
    Warn,
    /// Will not work until fixed.
    Fail,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            outcome: CheckOutcome::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A failed check with its fix.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            outcome: CheckOutcome::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A warning with advice.
    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            outcome: CheckOutcome::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// A row kept in a target's dead-letter queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// A dead letter as a target without tables of its own keeps it (one JSON
/// record: a Redis hash field, an index document): a [`KeptRow`] but for
/// its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    pub source: String,
    pub table: String,
    pub stage: DeadLetterStage,
    pub origin: String,
    pub line: Option<u64>,
    pub raw: String,
    pub reason: String,
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    pub kept: Option<KeptChange>,
}

impl DeadLetterRecord {
    /// `dead`, set aside from `source`'s batch `seq`, kept at `at`.
    pub fn new(source: &str, dead: DeadLetter, seq: u64, at: DateTime<Utc>) -> Self {
        DeadLetterRecord {
            source: source.to_owned(),
            table: dead.table.name,
            stage: dead.stage,
            origin: dead.origin,
            line: dead.line,
            raw: dead.raw,
            reason: dead.reason,
            seq,
            recorded_at: at,
            kept: dead.kept,
        }
    }

    /// The record as the dead-letter commands list it, numbered `id`.
    pub fn into_kept(self, id: u64) -> KeptRow {
        KeptRow {
            id,
            source: self.source,
            table: self.table,
            stage: self.stage,
            origin: self.origin,
            line: self.line,
            raw: self.raw,
            reason: self.reason,
            seq: self.seq,
            recorded_at: self.recorded_at,
            kept: self.kept,
        }
    }
}

/// The bounded channel a source writes batches into. `send` waits while the
/// sinks are behind: that wait is the pipeline's backpressure.
pub type BatchSender = mpsc::Sender<Batch>;

/// What a source's run returns once `cancel` fired: `Ok(())` in place of
/// the [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled) error a send
/// or a wait interrupted by the stop gives (see the contract of
/// [`Source::run`]); any other outcome as it is.
pub fn stopped(result: Result<()>, cancel: &CancellationToken) -> Result<()> {
    match result {
        Err(e) if cancel.is_cancelled() && e.kind() == crate::ErrorKind::Cancelled => Ok(()),
        other => other,
    }
}

/// Everything a running source is given.
#[derive(Debug)]
pub struct SourceContext {
    /// The source's name in the pipeline file.
    pub name: String,
    /// Where to resume: the position after the last batch every sink holds,
    /// or `None` to start from scratch.
    pub resume: Option<Position>,
    /// Where batches go.
    pub batches: BatchSender,
    /// The latest position every sink has durably committed.
    pub acknowledged: watch::Receiver<Option<Position>>,
    /// Progress and phase reporting.
    pub status: StatusHandle,
    /// Cancelled when the pipeline stops; the source returns `Ok(())` promptly.
    pub cancel: CancellationToken,
    /// `true`: after the snapshot, keep streaming changes until cancelled.
    /// `false`: stop once everything present at start is delivered.
    pub follow: bool,
    /// The highest position any sink holds for this source (at or above
    /// `resume`). When sinks disagree, batches the source cannot reproduce
    /// exactly as before (a re-read snapshot, a changed file) must be
    /// numbered above it, so that no sink skips them as already held.
    pub highest_held: u64,
    /// The position each sink of this source holds (sinks holding none are
    /// left out). A source whose resumed work differs per sink (a snapshot
    /// some sinks finished while others did not) numbers it above the
    /// positions of the sinks that need it and at or below those of the
    /// sinks that already hold what it stands for, so each skips exactly
    /// what it holds.
    pub held: Vec<Position>,
    /// `true`: every consumer of this source's batches reads
    /// [`Batch::block`], so the source may send bulk inserts column by
    /// column. `false`: changes only.
    pub blocks: bool,
    /// The sinks may hold rows of this pipeline that no position covers
    /// (it was dropped: its checkpoints were forgotten, its rows kept). A
    /// run none of whose sinks holds a position then restates rather than
    /// starting fresh, so rows the source lost meanwhile do not stay.
    pub earlier_rows: bool,
}

/// The key of a source's position state that holds its generation (see
/// [`Start::Restate`]); absent means 0.
pub const GENERATION: &str = "generation";

/// How a source begins a run, from the positions its sinks hold
/// ([`SourceContext::start`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Every sink holds a position of the same generation: go on after
    /// [`SourceContext::resume`], keeping that generation in every
    /// position.
    Resume {
        /// The generation the positions carry.
        generation: u64,
    },
    /// No sink holds anything: a first run, generation 0.
    Fresh,
    /// Start from nothing while some sink holds rows of an earlier run: a
    /// sink added since holds nothing, the sinks hold positions of
    /// different generations (a restatement stopped before every sink took
    /// it up, so some hold part of it and others the run before), or none
    /// holds a position but they keep the rows of a dropped run
    /// ([`SourceContext::earlier_rows`]). Every
    /// table is truncated and then copied whole into every sink, numbered
    /// above [`SourceContext::highest_held`], and every position of the
    /// run carries `generation` (one more than any held), so that a stop
    /// midway is told apart and restated again.
    Restate {
        /// The generation this run's positions carry.
        generation: u64,
    },
}

/// The generation a position carries.
pub fn generation_of(position: &Position) -> u64 {
    position
        .state
        .get(GENERATION)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

impl SourceContext {
    /// How this run begins (see [`Start`]).
    pub fn start(&self) -> Start {
        let generations: std::collections::BTreeSet<u64> =
            self.held.iter().map(generation_of).collect();
        let highest = generations.iter().next_back().copied();
        match (&self.resume, highest) {
            (_, None) if self.earlier_rows => Start::Restate { generation: 1 },
            (_, None) => Start::Fresh,
            (Some(_), Some(generation)) if generations.len() == 1 => Start::Resume { generation },
            (_, Some(highest)) => Start::Restate {
                generation: highest + 1,
            },
        }
    }
}

/// A system changes are read from.
///
/// # Contract
///
/// * **Order.** [`Source::run`] emits batches in the order their changes
///   were committed at the source; the changes inside a batch keep their
///   order. One batch is one source transaction (or one chunk of a snapshot
///   or a file). A transaction too large to hold in memory whole goes out
///   in parts, every one but the last marked [`Batch::continues`]; sinks
///   commit it only with its last part, so a target never holds half of
///   one.
/// * **Positions.** Every batch carries the position the source will have
///   reached once it is applied; `position.seq` increases strictly, across
///   restarts too (start above `ctx.resume`'s), except that the parts of
///   one transaction before its last share one seq, above the previous
///   batch's and below the last part's, the same each time the
///   transaction is read again. A batch the source cannot
///   reproduce exactly as before (a re-read snapshot, a changed file) is
///   numbered above the position of every sink that needs it
///   ([`SourceContext::held`]; [`SourceContext::highest_held`] when the
///   source cannot tell), so no such sink skips it.
/// * **Resume.** A run starts after `ctx.resume` (the lowest position every
///   sink holds) or, with none, from a consistent snapshot that meets the
///   change stream with no gap and no overlap. [`SourceContext::start`]
///   says which: when some sink holds rows but a run cannot resume for all
///   (a sink added, or positions of different generations), every table is
///   truncated and copied again ([`Start::Restate`]).
/// * **Sinks at different positions.** Each sink skips the batches at or
///   below its own position; whatever a sink further ahead holds that the
///   run reads again differently (a changed file, a polled page) is sent
///   numbered above it, so every sink ends equal to the source.
/// * **Release.** Upstream resources (a replication slot's confirmed LSN, a
///   binlog position, a file's manifest) are released only up to a position
///   received on [`SourceContext::acknowledged`]: every sink has committed
///   it.
/// * **Backpressure and stop.** Sending waits while the sinks are behind;
///   the source reads no further meanwhile. When `ctx.cancel` fires, the
///   source stops reading, returns `Ok(())` promptly and emits nothing more.
/// * **Status.** Per table it reports its phase ([`StatusHandle::set_phase`]:
///   snapshot, catch-up, streaming, done), the snapshot's expected rows where
///   it can estimate them ([`StatusHandle::set_snapshot_total`]), and the
///   change log it retains for the pipeline
///   ([`StatusHandle::set_retained_bytes`]); committed counts, rates and lag
///   the runtime derives from the batches. A lost connection it retries is
///   reported with [`StatusHandle::record_error`].
/// * **Nothing dropped.** A record it cannot read becomes a dead letter in
///   the batch it belongs to, with its origin and reason.
#[async_trait]
pub trait Source: Send {
    /// Connects and runs pre-flight checks, explaining each failure.
    async fn check(&mut self) -> Vec<Check>;

    /// The tables this source emits, with their current schema.
    async fn discover(&mut self) -> Result<Vec<Arc<TableSchema>>>;

    /// Emits batches in commit order, starting after `ctx.resume`, until
    /// done (see [`SourceContext::follow`]) or cancelled. Each batch's
    /// `position.seq` is greater than the previous one's and than
    /// `ctx.resume`'s.
    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<()>;

    /// Reads rows of `table` for a preview or a lookup: all of them when
    /// `limit` is `None` or the table holds no more; otherwise a sample of
    /// `limit` rows chosen by `seed` (the same seed gives the same rows
    /// while the table is unchanged). Moves no position and creates
    /// nothing in the system.
    async fn sample(
        &mut self,
        table: &str,
        limit: Option<usize>,
        seed: u64,
    ) -> Result<(Arc<TableSchema>, Vec<Row>)>;

    /// Up to `limit` of the most recent changes of `table` that the
    /// source's change log still holds, oldest first, without consuming
    /// them (for a preview). The default has no change log.
    async fn recent_changes(&mut self, table: &str, limit: usize) -> Result<Vec<Change>> {
        let _ = (table, limit);
        Ok(Vec::new())
    }

    /// Removes what the source created in the system for this pipeline
    /// (replication slots, publications) when the pipeline is dropped, and
    /// says what it removed. The default has nothing to remove.
    async fn release(&mut self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// A reader of `table`'s rows in key order, for comparing it with the
    /// targets ([`crate::verify`]), and the table's schema as it is now.
    /// Moves no position and creates nothing in the system. The default
    /// cannot read its tables that way.
    async fn reader(&mut self, table: &str) -> Result<(Arc<TableSchema>, Box<dyn RowReader>)> {
        Err(crate::Error::new(
            crate::ErrorKind::Precondition,
            format!("this kind of source cannot read `{table}` in key order for verify yet"),
        ))
    }
}

/// A system changes are written to.
#[async_trait]
pub trait Sink: Send {
    /// Connects and runs pre-flight checks, explaining each failure.
    async fn check(&mut self) -> Vec<Check>;

    /// Opens the target, creates or evolves the tables it will receive, and
    /// returns the last position it durably holds, per source name. Target
    /// tables are named by [`TableId::name`](crate::model::TableId) alone:
    /// the runtime never opens a sink with two tables of one name.
    async fn open(&mut self, tables: &[Arc<TableSchema>]) -> Result<BTreeMap<String, Position>>;

    /// Applies one batch from `source` atomically together with its position,
    /// and returns only once both are durable. Batches already held (see the
    /// module's redelivery rule) are skipped. A change holding a value this
    /// target cannot store (see [`apply::set_aside`](crate::apply::set_aside))
    /// becomes a dead letter committed with the batch, here only: never a
    /// NULL, never a batch that fails on every retry.
    ///
    /// A batch that [`continues`](Batch::continues) a source transaction is
    /// applied but not committed: the target transaction stays open (and
    /// [`Sink::holds_uncommitted`] says so) until the batch that ends the
    /// source transaction, and commits with its position. Batches of other
    /// sources that arrive meanwhile join the open target transaction and
    /// commit with it. A target that cannot keep a transaction open across
    /// writes keeps the parts until the last one comes and applies them
    /// together (memory then holds the transaction).
    ///
    /// A write that fails with [`ErrorKind::Connection`](crate::ErrorKind)
    /// (the target cannot be reached) is called again with the same batches
    /// for as long as the pipeline runs, unless the sink holds uncommitted
    /// batches ([`Sink::holds_uncommitted`]): the sink reconnects and, where
    /// the failed attempt may have committed, finds that out from the
    /// position it holds, so nothing is applied twice.
    async fn write(&mut self, source: &str, batch: Arc<Batch>) -> Result<()>;

    /// Applies consecutive batches of one source, in order, as one unit where
    /// the target has transactions, with the last batch's position; the same
    /// durability and redelivery rules as [`Sink::write`] hold for each. The
    /// runtime calls this when batches queue up behind a busy sink. The
    /// default writes them one by one.
    async fn write_group(&mut self, source: &str, batches: Vec<Arc<Batch>>) -> Result<()> {
        for batch in batches {
            self.write(source, batch).await?;
        }
        Ok(())
    }

    /// This pipeline's rows in the target's dead-letter queue, oldest
    /// first. Works without [`Sink::open`]. The default keeps none.
    async fn dead_letters(&mut self) -> Result<Vec<KeptRow>> {
        Ok(Vec::new())
    }

    /// Applies `batches` (dead letters replayed through the current
    /// transforms, each batch with the position the row was kept at) and
    /// removes the dead letters `resolved`, as one unit where the target
    /// has transactions. Checkpoints do not move and held positions do not
    /// skip anything: replayed rows are outside the source's order. Called
    /// after [`Sink::open`].
    async fn replay(&mut self, batches: Vec<Batch>, resolved: Vec<u64>) -> Result<()> {
        let _ = (batches, resolved);
        Err(crate::Error::new(
            crate::ErrorKind::Precondition,
            "this target keeps no dead letters to replay",
        ))
    }

    /// Removes the dead letters `ids` of this pipeline; returns how many
    /// were removed. Works without [`Sink::open`].
    async fn discard(&mut self, ids: &[u64]) -> Result<u64> {
        let _ = ids;
        Ok(0)
    }

    /// A reader of the rows this target holds for `table` (a table it
    /// receives, described as its source has it now), in key order
    /// ([`crate::verify`]): the table's columns, found by name in the
    /// target and read back as the table's types. A table the target does
    /// not hold reads as empty; a column it lacks is an error naming it.
    /// Works without [`Sink::open`] and writes nothing. The default cannot
    /// read its rows back.
    async fn reader(&mut self, table: &Arc<TableSchema>) -> Result<Box<dyn RowReader>> {
        Err(crate::Error::new(
            crate::ErrorKind::Precondition,
            format!(
                "this kind of target cannot read `{}` back for verify yet",
                table.id.name
            ),
        ))
    }

    /// Forgets this pipeline's checkpoints, so its next run starts over
    /// (the pipeline was dropped). Data already written stays.
    async fn forget(&mut self) -> Result<()> {
        Ok(())
    }

    /// Whether this sink applies [`Batch::block`] (the runtime then lets
    /// sources send bulk inserts column by column). The default is `false`:
    /// the sink receives changes only.
    fn takes_blocks(&self) -> bool {
        false
    }

    /// Whether batches [`Sink::write_group`] applied are still waiting to be
    /// committed. A sink may leave a group of blocks ([`Batch::block`])
    /// uncommitted to commit it together with the next ones (a larger
    /// transaction is cheaper for some targets); the runtime acknowledges
    /// such batches only once this is `false` again, after a later
    /// `write_group` or [`Sink::flush`]. The default is `false`: every
    /// group is committed before `write_group` returns.
    fn holds_uncommitted(&self) -> bool {
        false
    }

    /// Commits whatever [`Sink::write_group`] left uncommitted, unless a
    /// source transaction is still open in it (its last part has not come):
    /// that stays uncommitted. Called when no batch is waiting for the
    /// sink, and before [`Sink::close`]. The default does nothing.
    async fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Flushes and releases the target. A source transaction still open in
    /// it (the pipeline stopped between its parts) is rolled back, never
    /// committed half. The default does nothing.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A step between the sources and the sinks that derives new tables from
/// source tables (the SQL transforms). It sees every batch of every source,
/// in each source's order, before any sink does, and adds to the batch the
/// changes (and dead letters) of the tables it derives; the batch keeps its
/// position, so derived changes are applied and checkpointed atomically with
/// the source changes they come from.
///
/// # Contract
///
/// * **Deterministic.** The same batch, after the same earlier batches,
///   gives the same derived changes: after a crash the source redelivers
///   batches a sink may already hold, and a sink that skips them must not
///   miss anything another sink applied.
/// * **Redelivery.** A batch may be seen again after a restart (the
///   transform starts fresh then, its lookups read anew).
/// * **Blocking.** [`Transform::apply`] runs on a blocking thread (it may
///   run SQL); it must not wait on the pipeline itself.
/// * **Nothing dropped.** A row it fails on becomes a dead letter of the
///   derived table with the change kept for replay; the rest of the batch
///   goes on.
pub trait Transform: Send {
    /// The tables this step produces, derived from the discovered source
    /// tables; called once before the sinks are opened.
    fn derive(&mut self, tables: &[Arc<TableSchema>]) -> Result<Vec<Arc<TableSchema>>>;

    /// The source table a derived table is computed from (after
    /// [`Transform::derive`]); its phase is shown as the derived table's.
    fn input_of(&self, _derived: &TableId) -> Option<TableId> {
        None
    }

    /// Adds to `batch` the changes and dead letters derived from its
    /// changes. A row the step cannot process becomes a dead letter and the
    /// rest of the batch goes on; an error stops the pipeline.
    fn apply(&mut self, batch: &mut Batch) -> Result<()>;
}

/// A deterministic sample of at most `limit` of the rows offered, kept as
/// they stream by (memory holds `limit` rows, whatever is offered): the
/// same seed gives the same rows; another seed, others. Rows keep their
/// order. Each row's place scores it (a hash of seed and place); the
/// `limit` lowest scores are kept.
#[derive(Debug)]
pub struct Sample<T> {
    limit: Option<usize>,
    seed: u64,
    offered: u64,
    /// The rows kept by (score, place), the highest score on top.
    kept: std::collections::BinaryHeap<Scored<T>>,
}

#[derive(Debug)]
struct Scored<T>(u64, u64, T);

impl<T> PartialEq for Scored<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl<T> Eq for Scored<T> {}
impl<T> PartialOrd for Scored<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Scored<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

impl<T> Sample<T> {
    /// A sample of at most `limit` rows (every row with `None`).
    pub fn new(limit: Option<usize>, seed: u64) -> Self {
        Self {
            limit,
            seed,
            offered: 0,
            kept: std::collections::BinaryHeap::new(),
        }
    }

    /// Offers the next row.
    pub fn offer(&mut self, row: T) {
        let place = self.offered;
        self.offered += 1;
        let score = match self.limit {
            None => 0,
            Some(0) => return,
            Some(_) => self.score(place),
        };
        let full = self.limit.is_some_and(|l| self.kept.len() >= l);
        if !full {
            self.kept.push(Scored(score, place, row));
        } else if self.kept.peek().is_some_and(|top| score < top.0) {
            self.kept.pop();
            self.kept.push(Scored(score, place, row));
        }
    }

    /// The rows kept, in the order they were offered.
    pub fn rows(self) -> Vec<T> {
        let mut kept = self.kept.into_vec();
        kept.sort_unstable_by_key(|s| s.1);
        kept.into_iter().map(|s| s.2).collect()
    }

    /// splitmix64 of (seed, place): a cheap, well-spread hash.
    fn score(&self, place: u64) -> u64 {
        let mut z = self
            .seed
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(place.wrapping_mul(0xBF58_476D_1CE4_E5B9));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::{Sample, SourceContext, Start};
    use crate::batch::Position;
    use crate::status::StatusHandle;

    /// How a run begins from the positions `held` and the lowest of them
    /// every sink holds (`resume`), with `earlier_rows`.
    fn start(held: &[(u64, u64)], resume: bool, earlier_rows: bool) -> Start {
        let position = |&(seq, generation): &(u64, u64)| Position {
            seq,
            state: serde_json::json!({ "generation": generation }),
        };
        let held: Vec<Position> = held.iter().map(position).collect();
        let resume = resume
            .then(|| held.iter().min_by_key(|p| p.seq).cloned())
            .flatten();
        let (batches, _) = tokio::sync::mpsc::channel(1);
        let (_, acknowledged) = tokio::sync::watch::channel(None);
        SourceContext {
            name: "s".into(),
            resume,
            batches,
            acknowledged,
            status: StatusHandle::new("p"),
            cancel: tokio_util::sync::CancellationToken::new(),
            follow: false,
            highest_held: held.iter().map(|p| p.seq).max().unwrap_or(0),
            held,
            blocks: false,
            earlier_rows,
        }
        .start()
    }

    #[test]
    fn a_run_begins_from_what_the_sinks_hold() {
        assert_eq!(start(&[], false, false), Start::Fresh);
        // Dropped: no checkpoint, but the rows are still there.
        assert_eq!(start(&[], false, true), Start::Restate { generation: 1 });
        assert_eq!(
            start(&[(5, 2), (9, 2)], true, false),
            Start::Resume { generation: 2 }
        );
        // A position held after the drop: that run's positions count.
        assert_eq!(
            start(&[(5, 1)], true, true),
            Start::Resume { generation: 1 }
        );
        // A sink added (it holds nothing), or generations that differ.
        assert_eq!(
            start(&[(5, 0)], false, false),
            Start::Restate { generation: 1 }
        );
        assert_eq!(
            start(&[(5, 1), (9, 2)], true, false),
            Start::Restate { generation: 3 }
        );
    }

    fn sample(total: u64, limit: Option<usize>, seed: u64) -> Vec<u64> {
        let mut s = Sample::new(limit, seed);
        (0..total).for_each(|i| s.offer(i));
        s.rows()
    }

    #[test]
    fn a_sample_keeps_the_limit_in_order_and_depends_only_on_the_seed() {
        let a = sample(10_000, Some(50), 7);
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "rows keep their order");
        assert_eq!(
            a,
            sample(10_000, Some(50), 7),
            "the same seed, the same rows"
        );
        assert_ne!(a, sample(10_000, Some(50), 8), "another seed, other rows");
        // Spread over the whole input, not its start.
        assert!(a.iter().any(|&i| i >= 5_000) && a.iter().any(|&i| i < 5_000));
        assert_eq!(sample(30, Some(50), 7), (0..30).collect::<Vec<_>>());
        assert_eq!(sample(30, None, 7), (0..30).collect::<Vec<_>>());
        assert!(sample(30, Some(0), 7).is_empty());
    }
}
