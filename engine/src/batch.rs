//! Batches: what a source emits and a sink applies atomically, with the
//! position the source will have reached once it is applied.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::columnar::InsertBlock;
use crate::model::{Change, DeadLetter};

/// A source position: where the source will resume after everything up to
/// and including the batch that carries it.
///
/// `seq` increases strictly with every batch a source emits, across restarts
/// (the source continues from the `seq` of the position it resumes from), so
/// sinks can tell a batch they already hold from a new one. `state` is the
/// source's own description (an LSN, a binlog file and offset, the files done
/// so far); only the source reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// Strictly increasing batch sequence number.
    pub seq: u64,
    /// Source-defined resume state.
    pub state: serde_json::Value,
}

/// Where a batch comes from in a table's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// Part of the initial copy of a table. Its inserts may still be rows a
    /// target already holds (a snapshot resumed after a crash, a re-read
    /// file); only [`Batch::inserts_are_new`] promises they are not.
    Snapshot,
    /// Changes read from the source's change log (or a changed file).
    Stream,
    /// Changes read from the change log while a resumed snapshot replays
    /// it up to the point of a new copy of its unfinished tables. Applied
    /// exactly as [`BatchKind::Stream`]; the source leaves out what that
    /// copy supersedes.
    CatchUp,
}

/// An ordered group of changes applied atomically: one source transaction or
/// one snapshot chunk, or a part of a source transaction too large to hold
/// in memory whole ([`Batch::continues`]).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Position reached once this batch is applied.
    pub position: Position,
    /// Snapshot chunk or streamed changes.
    pub kind: BatchKind,
    /// Source transaction id, where the source has one.
    pub txid: Option<String>,
    /// Commit time at the source, where known.
    pub commit_time: Option<DateTime<Utc>>,
    /// Changes, in source order.
    pub changes: Vec<Change>,
    /// More inserts, column by column, after `changes`. Only a source told
    /// [`crate::connector::SourceContext::blocks`] sends them; their values
    /// fit their columns by construction. [`Batch::len`] counts their rows.
    pub block: Option<InsertBlock>,
    /// Records rejected while reading, kept with their reason.
    pub dead_letters: Vec<DeadLetter>,
    /// The source promises that every insert of this batch has a key (a
    /// unique key of the source table, never NULL) that no other change of
    /// this batch has, and that no insert of an earlier batch with this flag
    /// set, emitted by this source in the same run, had. The first copy of a
    /// table under one consistent snapshot is such a run.
    ///
    /// A sink may then add these inserts without looking up their keys, as
    /// long as the target table was empty when the run started and has
    /// received nothing since but flagged inserts of this source: the sink
    /// checks that itself. `false` promises nothing and is always correct
    /// (resumed or re-read snapshots, changed files, streamed transactions).
    pub inserts_are_new: bool,
    /// The source transaction goes on in the source's next batch: this is
    /// one of its parts, not its end. Every part but the last carries the
    /// same `position.seq`, below the last one's, and a position no sink
    /// may commit: a sink applies the parts in one target transaction and
    /// commits it only with the batch that ends the source transaction, so
    /// a target holds all of it or none of it (see the
    /// [`Sink`](crate::connector::Sink) contract).
    pub continues: bool,
}

impl Batch {
    /// A streamed batch of `changes` reaching `position`: no block, no dead
    /// letters, no commit time or transaction id, nothing promised about
    /// its inserts.
    pub fn stream(position: Position, changes: Vec<Change>) -> Batch {
        Batch {
            position,
            kind: BatchKind::Stream,
            txid: None,
            commit_time: None,
            changes,
            block: None,
            dead_letters: Vec::new(),
            inserts_are_new: false,
            continues: false,
        }
    }

    /// Where a dead letter of this batch came from, for a person: its
    /// source transaction, or its position.
    pub fn origin(&self) -> String {
        self.txid.as_ref().map_or_else(
            || format!("batch {}", self.position.seq),
            |t| format!("transaction {t}"),
        )
    }

    /// Number of changes, block rows and dead letters: the unit of
    /// progress counting.
    pub fn len(&self) -> usize {
        self.changes.len() + self.block_rows() + self.dead_letters.len()
    }

    /// Rows of the block, if any.
    pub fn block_rows(&self) -> usize {
        self.block.as_ref().map_or(0, InsertBlock::len)
    }

    /// Whether the batch carries nothing but its position.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch with its block turned into changes (appended to
    /// `changes`), for consumers that read rows.
    pub fn without_block(mut self) -> Batch {
        if let Some(block) = self.block.take() {
            self.changes.extend(block.changes());
        }
        self
    }
}
