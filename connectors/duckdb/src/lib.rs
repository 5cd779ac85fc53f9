//! DuckDB target: the embedded local warehouse and Syncline's default.
//!
//! Every batch is written in one DuckDB transaction together with the
//! pipeline's checkpoint row (`_syncline_checkpoints`), so after a crash a
//! batch is either wholly present with its checkpoint or wholly absent:
//! exactly-once effect. Rows are staged through the Arrow appender and merged
//! with set-based SQL, never inserted row by row. Rejected records land in
//! `_syncline_dead_letters` in the same transaction.
//!
//! In upsert mode, inserts a source promises are new rows
//! ([`Batch::inserts_are_new`], a first snapshot) go straight into a table
//! that was empty when the writer opened it and has received nothing else
//! since: no key can match, so the merge is skipped. Anything else on that
//! table ends the shortcut until a truncate empties it.
//!
//! Target tables are named after the source table, in `schema` (default
//! `main`). The type map is documented in [`types`].

pub mod browse;
mod dialect;
mod error;
pub mod shared;
mod verify;
mod writer;

pub use syncline_duck::{quote, types};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::batch::{Batch, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::{Check, KeptRow, Sink};
use syncline_engine::model::TableSchema;
use syncline_engine::{Error, Result};

pub use error::DuckDbError;
pub use writer::{CHECKPOINT_TABLE, DEAD_LETTER_TABLE, WriteStats, Writer, read_checkpoints};

/// A DuckDB database file as a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuckDbTargetConfig {
    /// Database file, relative to the pipeline file. Created if missing.
    pub path: String,
    /// DuckDB schema the tables are written into.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// What this target receives: `source` (all its tables), `source.table`,
    /// or a transform name.
    pub inputs: Vec<String>,
    /// How changes are written.
    #[serde(default)]
    pub mode: WriteMode,
}

fn default_schema() -> String {
    "main".to_owned()
}

/// The DuckDB sink.
#[derive(Debug)]
pub struct DuckDbSink {
    path: PathBuf,
    pipeline: String,
    config: DuckDbTargetConfig,
    writer: Option<Writer>,
}

impl DuckDbSink {
    /// A sink for `config`, resolving its path against `base_dir`.
    pub fn new(config: DuckDbTargetConfig, base_dir: &Path, pipeline: &str) -> Self {
        DuckDbSink {
            path: base_dir.join(&config.path),
            pipeline: pipeline.to_owned(),
            config,
            writer: None,
        }
    }

    /// The resolved database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Writer) -> Result<R, DuckDbError> + Send + 'static,
    ) -> Result<R> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| Error::internal("DuckDB sink used before open"))?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut writer);
            (writer, r)
        })
        .await
        .map_err(|_| Error::from(DuckDbError::Worker))?;
        self.writer = Some(writer);
        result.map_err(Error::from)
    }

    /// Opens a writer of this sink's file, off the async threads (the
    /// future holds no reference to the sink, whose writer is not `Sync`).
    fn open_writer(&self) -> impl Future<Output = Result<Writer>> + Send + 'static {
        let path = self.path.clone();
        let pipeline = self.pipeline.clone();
        let mode = self.config.mode;
        let schema = self.config.schema.clone();
        async move {
            let writer =
                tokio::task::spawn_blocking(move || Writer::open(&path, &pipeline, mode, &schema))
                    .await
                    .map_err(|_| Error::from(DuckDbError::Worker))??;
            Ok(writer)
        }
    }
}

#[async_trait]
impl Sink for DuckDbSink {
    async fn check(&mut self) -> Vec<Check> {
        let name = "database file is writable";
        match self.open_writer().await {
            Ok(_) => vec![Check::pass(
                name,
                format!("{} opened for writing", self.path.display()),
            )],
            Err(e) => vec![Check::fail(
                name,
                e.chain(),
                "check that the folder exists and is writable, and that no other program holds the file open",
            )],
        }
    }

    async fn open(&mut self, tables: &[Arc<TableSchema>]) -> Result<BTreeMap<String, Position>> {
        self.writer = Some(self.open_writer().await?);
        let tables = tables.to_vec();
        self.blocking(move |w| w.prepare(&tables)).await
    }

    async fn reader(
        &mut self,
        table: &Arc<TableSchema>,
    ) -> Result<Box<dyn syncline_engine::verify::RowReader>> {
        let path = self.path.clone();
        let db_schema = self.config.schema.clone();
        let table = table.clone();
        let reader = tokio::task::spawn_blocking(move || {
            verify::TableReader::open(&path, &db_schema, table)
        })
        .await
        .map_err(|_| Error::from(DuckDbError::Worker))??;
        Ok(Box::new(reader))
    }

    async fn forget(&mut self) -> Result<()> {
        let mut writer = self.open_writer().await?;
        tokio::task::spawn_blocking(move || writer.forget())
            .await
            .map_err(|_| Error::from(DuckDbError::Worker))?
            .map_err(Error::from)
    }

    async fn write_group(&mut self, source: &str, batches: Vec<Arc<Batch>>) -> Result<()> {
        let source = source.to_owned();
        self.blocking(move |w| {
            let refs: Vec<&Batch> = batches.iter().map(|b| b.as_ref()).collect();
            w.write_group(&source, &refs).map(|_| ())
        })
        .await
    }

    async fn dead_letters(&mut self) -> Result<Vec<KeptRow>> {
        if self.writer.is_none() {
            self.writer = Some(self.open_writer().await?);
        }
        self.blocking(|w| w.dead_letters()).await
    }

    async fn replay(&mut self, batches: Vec<Batch>, resolved: Vec<u64>) -> Result<()> {
        self.blocking(move |w| w.replay(&batches, &resolved)).await
    }

    async fn discard(&mut self, ids: &[u64]) -> Result<u64> {
        if self.writer.is_none() {
            self.dead_letters().await?;
        }
        let ids = ids.to_vec();
        self.blocking(move |w| w.discard(&ids)).await
    }

    /// Snapshot blocks of new rows are appended as they are; any other
    /// block is applied as the inserts it stands for.
    fn takes_blocks(&self) -> bool {
        true
    }

    fn holds_uncommitted(&self) -> bool {
        self.writer.as_ref().is_some_and(Writer::holds_uncommitted)
    }

    async fn flush(&mut self) -> Result<()> {
        if self.holds_uncommitted() {
            self.blocking(Writer::commit_open).await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        self.flush().await?;
        if self.holds_uncommitted() {
            self.blocking(|w| {
                w.abandon_unfinished();
                Ok(())
            })
            .await?;
        }
        if let Some(w) = &self.writer {
            let stats = w.stats();
            tracing::info!(
                path = %self.path.display(),
                appended = stats.appended,
                merged = stats.merged,
                checkpoints = stats.checkpoints,
                commits = stats.commits,
                delete_room_mb = stats.delete_room_mb,
                "DuckDB target done"
            );
        }
        Ok(())
    }

    async fn write(&mut self, source: &str, batch: Arc<Batch>) -> Result<()> {
        let source = source.to_owned();
        self.blocking(move |w| w.write(&source, &batch).map(|_| ()))
            .await
    }
}
