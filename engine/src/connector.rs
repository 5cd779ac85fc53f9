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
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::model::{Batch, Position, TableSchema};
use crate::status::StatusHandle;

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

/// The bounded channel a source writes batches into. `send` waits while the
/// sinks are behind: that wait is the pipeline's backpressure.
pub type BatchSender = mpsc::Sender<Batch>;

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
}

/// A system changes are read from.
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

    /// Removes what the source created in the system for this pipeline
    /// (replication slots, publications) when the pipeline is dropped, and
    /// says what it removed. The default has nothing to remove.
    async fn release(&mut self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// A system changes are written to.
#[async_trait]
pub trait Sink: Send {
    /// Connects and runs pre-flight checks, explaining each failure.
    async fn check(&mut self) -> Vec<Check>;

    /// Opens the target, creates or evolves the tables it will receive, and
    /// returns the last position it durably holds, per source name.
    async fn open(&mut self, tables: &[Arc<TableSchema>]) -> Result<BTreeMap<String, Position>>;

    /// Applies one batch from `source` atomically together with its position,
    /// and returns only once both are durable. Batches already held (see the
    /// module's redelivery rule) are skipped.
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

    /// Forgets this pipeline's checkpoints, so its next run starts over
    /// (the pipeline was dropped). Data already written stays.
    async fn forget(&mut self) -> Result<()> {
        Ok(())
    }

    /// Flushes and releases the target. The default does nothing.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}
