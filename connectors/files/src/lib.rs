//! Watched-folder source: a folder of CSV, JSON-lines or Parquet files, each
//! table made of the files one glob pattern matches.
//!
//! * First run: every file is read (schema inferred from the first file,
//!   overridable per column) and its rows become inserts.
//! * Then the folder is watched: a new file's rows become inserts, a changed
//!   file is diffed by key against what was applied from it (inserts, updates
//!   and deletes for exactly the rows that differ), and a removed file's keys
//!   become deletes.
//! * Records that cannot be read (wrong field count, unparsable value, empty
//!   key, invalid JSON) go to the sink's dead-letter table with the file, line,
//!   raw text and reason; the rest of the file still loads.
//! * The position is, per file, the digest of the content applied and how many
//!   of its changes were emitted; a restart skips what is done and resumes a
//!   half-applied file where it stopped.
//!
//! A key present in several files is last-writer-wins. Without a key a
//! changed file only contributes rows appended at its end.

mod error;
pub mod format;
pub mod infer;
pub mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use globset::{Glob, GlobMatcher};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::config::{SyncMode, TableDecl};
use syncline_engine::connector::{Check, Source, SourceContext, sample_indexes};
use syncline_engine::model::{Change, DataType, DeadLetter, Op, Row, TableId, TableSchema, Value};
use syncline_engine::status::Phase;
use syncline_engine::{Error, ErrorKind, Result};
use tracing::{Instrument, debug, info, warn};

pub use error::FilesError;
pub use format::FileFormat;
use format::{CsvDialect, ParsedFile};
use state::{FileState, FilesState, Manifest, ManifestStore};

/// A folder of files as a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesSourceConfig {
    /// The folder, relative to the pipeline file.
    pub path: String,
    /// The tables this folder holds.
    #[schemars(length(min = 1))]
    pub tables: Vec<FilesTableConfig>,
    /// Changes per batch (one target transaction each).
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
    /// Quiet time after a file changes before it is read, in milliseconds.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
}

fn default_batch_rows() -> usize {
    10_000
}

fn default_debounce_ms() -> u64 {
    300
}

/// One table: the files a glob pattern matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesTableConfig {
    /// Table name (also the target table's name).
    pub name: String,
    /// Glob relative to the folder, e.g. `orders/*.csv` or `**/*.parquet`.
    pub pattern: String,
    /// File format; inferred from the file extension when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// Key columns. Needed to diff changed files and for upsert targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// `cdc`: load, then follow new, changed and removed files. `full`: reload
    /// the whole table on each run when any of its files changed.
    #[serde(default)]
    pub mode: SyncMode,
    /// Cursor column for incremental mode (not offered by this source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Column types that replace inferred ones, e.g. `{ amount = "decimal(12,2)" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
    /// CSV field delimiter (one character).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
}

fn default_delimiter() -> char {
    ','
}

impl FilesSourceConfig {
    /// Tables as the engine validates them.
    pub fn table_decls(&self) -> Vec<TableDecl> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| TableDecl {
                name: t.name.clone(),
                key: t.key.clone(),
                key_from_source: false,
                mode: t.mode,
                cursor: t.cursor.clone(),
                pointer: format!("/tables/{i}"),
            })
            .collect()
    }

    /// Modes this source implements.
    pub const MODES: &'static [SyncMode] = &[SyncMode::Cdc, SyncMode::Full];
}

struct Table {
    cfg: FilesTableConfig,
    matcher: GlobMatcher,
    schema: Option<Arc<TableSchema>>,
}

impl Table {
    fn id(&self, source: &str) -> TableId {
        TableId {
            origin: source.to_owned(),
            name: self.cfg.name.clone(),
        }
    }

    fn format_of(&self, path: &Path) -> Option<FileFormat> {
        self.cfg.format.or_else(|| FileFormat::from_path(path))
    }

    fn dialect(&self) -> CsvDialect {
        CsvDialect {
            delimiter: u8::try_from(self.cfg.delimiter).unwrap_or(b','),
        }
    }
}

/// The files source.
pub struct FilesSource {
    name: String,
    root: PathBuf,
    state_dir: PathBuf,
    batch_rows: usize,
    debounce: Duration,
    tables: Vec<Table>,
}

impl std::fmt::Debug for FilesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesSource")
            .field("name", &self.name)
            .field("root", &self.root)
            .finish()
    }
}

impl FilesSource {
    /// A source named `name` for `config`; relative paths resolve against
    /// `base_dir`; the source keeps its manifests in `state_dir`.
    pub fn new(
        name: &str,
        config: &FilesSourceConfig,
        base_dir: &Path,
        state_dir: &Path,
    ) -> Result<Self> {
        let mut tables = Vec::new();
        for t in &config.tables {
            let matcher = Glob::new(&t.pattern)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("table `{}`: bad pattern: {e}", t.name),
                    )
                })?
                .compile_matcher();
            tables.push(Table {
                cfg: t.clone(),
                matcher,
                schema: None,
            });
        }
        Ok(FilesSource {
            name: name.to_owned(),
            root: base_dir.join(&config.path),
            state_dir: state_dir.to_path_buf(),
            batch_rows: config.batch_rows.max(1),
            debounce: Duration::from_millis(config.debounce_ms),
            tables,
        })
    }

    /// Files of table `t`, relative to the folder, sorted.
    fn list(&self, t: &Table) -> Result<Vec<String>, FilesError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries =
                std::fs::read_dir(&dir).map_err(|e| FilesError::read(&dir, e.to_string()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if let Some(rel) = self.relative(&path)
                    && t.matcher.is_match(&rel)
                {
                    out.push(rel);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let text = rel.to_str()?.replace('\\', "/");
        let hidden = rel
            .components()
            .any(|c| c.as_os_str().to_str().is_some_and(|s| s.starts_with('.')));
        (!hidden && !text.is_empty()).then_some(text)
    }

    fn infer_schema(&self, t: &Table) -> Result<Arc<TableSchema>, FilesError> {
        let id = t.id(&self.name);
        let overrides: HashMap<String, DataType> = t
            .cfg
            .columns
            .iter()
            .map(|(c, ty)| {
                DataType::parse(ty).map(|d| (c.clone(), d)).ok_or_else(|| FilesError::Table {
                    table: t.cfg.name.clone(),
                    detail: format!(
                        "column `{c}`: unknown type `{ty}` (use boolean, int, bigint, double, decimal(p,s), text, bytes, date, time, timestamp, timestamptz, uuid or json)"
                    ),
                })
            })
            .collect::<Result<_, _>>()?;
        let files = self.list(t)?;
        let Some(first) = files.first() else {
            return Err(FilesError::Table {
                table: t.cfg.name.clone(),
                detail: format!(
                    "no file in {} matches `{}`, so its columns cannot be inferred",
                    self.root.display(),
                    t.cfg.pattern
                ),
            });
        };
        let path = self.root.join(first);
        let format = t.format_of(&path).ok_or_else(|| FilesError::Table {
            table: t.cfg.name.clone(),
            detail: format!(
                "cannot tell the format of {first}; set format = \"csv\", \"jsonl\" or \"parquet\""
            ),
        })?;
        let bytes = if format == FileFormat::Parquet {
            Vec::new()
        } else {
            std::fs::read(&path).map_err(|e| FilesError::read(&path, e.to_string()))?
        };
        let columns = format::infer_columns(&path, &bytes, format, t.dialect(), &|c| {
            overrides.get(c).cloned()
        })?;
        let mut key = Vec::new();
        for k in &t.cfg.key {
            match columns.iter().position(|c| c.name == *k) {
                Some(i) => key.push(i),
                None => {
                    return Err(FilesError::Table {
                        table: t.cfg.name.clone(),
                        detail: format!(
                            "key column `{k}` is not among the columns of {first}: {}",
                            columns
                                .iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
        }
        for c in overrides.keys() {
            if !columns.iter().any(|col| col.name == *c) {
                return Err(FilesError::Table {
                    table: t.cfg.name.clone(),
                    detail: format!("`columns` names `{c}`, which {first} does not have"),
                });
            }
        }
        Ok(Arc::new(TableSchema {
            id,
            columns,
            key,
            version: 1,
        }))
    }
}

#[async_trait]
impl Source for FilesSource {
    async fn check(&mut self) -> Vec<Check> {
        let mut checks = Vec::new();
        match std::fs::read_dir(&self.root) {
            Ok(_) => checks.push(Check::pass(
                "folder is readable",
                self.root.display().to_string(),
            )),
            Err(e) => {
                checks.push(Check::fail(
                    "folder is readable",
                    format!("{}: {e}", self.root.display()),
                    "create the folder or fix `path` in the pipeline file",
                ));
                return checks;
            }
        }
        for t in &self.tables {
            let name = format!("table {} has files", t.cfg.name);
            match self.list(t) {
                Ok(files) if files.is_empty() => checks.push(Check::fail(
                    name,
                    format!("no file matches `{}`", t.cfg.pattern),
                    "add files or fix `pattern`",
                )),
                Ok(files) => {
                    checks.push(Check::pass(
                        name,
                        format!("{} file(s) match `{}`", files.len(), t.cfg.pattern),
                    ));
                    let name = format!("table {} columns and key", t.cfg.name);
                    match self.infer_schema(t) {
                        Ok(s) => checks.push(Check::pass(
                            name,
                            format!(
                                "{} columns; key: {}",
                                s.columns.len(),
                                if s.key.is_empty() {
                                    "none".to_owned()
                                } else {
                                    s.key_names().join(", ")
                                }
                            ),
                        )),
                        Err(e) => checks.push(Check::fail(
                            name,
                            e.to_string(),
                            "fix the table's settings or its files",
                        )),
                    }
                }
                Err(e) => checks.push(Check::fail(name, e.to_string(), "check permissions")),
            }
        }
        if let Err(e) = ManifestStore::open(&self.state_dir) {
            checks.push(Check::fail(
                "state folder is writable",
                e.to_string(),
                "make the folder beside the pipeline file writable",
            ));
        }
        checks
    }

    async fn discover(&mut self) -> Result<Vec<Arc<TableSchema>>> {
        let mut out = Vec::new();
        for i in 0..self.tables.len() {
            let schema = self.infer_schema(&self.tables[i])?;
            self.tables[i].schema = Some(schema.clone());
            out.push(schema);
        }
        Ok(out)
    }

    async fn sample(
        &mut self,
        table: &str,
        limit: Option<usize>,
        seed: u64,
    ) -> Result<(Arc<TableSchema>, Vec<Row>)> {
        let i = self
            .tables
            .iter()
            .position(|t| t.cfg.name == table)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("source `{}` has no table `{table}`", self.name),
                )
            })?;
        let schema = self.infer_schema(&self.tables[i])?;
        let t = &self.tables[i];
        // Every file's rows, in file order; then a deterministic sample.
        let mut rows = Vec::new();
        for rel in self.list(t)? {
            let abs = self.root.join(&rel);
            let Some(format) = t.format_of(&abs) else {
                continue;
            };
            let bytes = if format == FileFormat::Parquet {
                Vec::new()
            } else {
                std::fs::read(&abs).map_err(|e| FilesError::read(&abs, e.to_string()))?
            };
            let parsed = format::parse_file(&abs, &rel, &bytes, format, t.dialect(), &schema)?;
            rows.extend(parsed.rows.into_iter().map(|r| r.row));
        }
        let rows = match limit {
            Some(limit) if rows.len() > limit => {
                let keep = sample_indexes(rows.len(), limit, seed);
                let mut keep = keep.into_iter().peekable();
                rows.into_iter()
                    .enumerate()
                    .filter_map(|(i, r)| {
                        (keep.peek() == Some(&i)).then(|| {
                            keep.next();
                            r
                        })
                    })
                    .collect()
            }
            _ => rows,
        };
        Ok((schema, rows))
    }

    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<()> {
        let mut sync = FolderSync::new(*self, &ctx)?;
        sync.initial(&ctx).await?;
        if !ctx.follow || ctx.cancel.is_cancelled() {
            return Ok(());
        }
        sync.follow(ctx).await
    }
}

/// The running source: its state and the next sequence number.
struct FolderSync {
    src: FilesSource,
    state: FilesState,
    seq: u64,
    manifests: ManifestStore,
    acked_digests: std::collections::BTreeSet<(String, String)>,
}

/// One file's changes ready to emit.
struct Pending {
    table: usize,
    rel: String,
    file_state: FileState,
    changes: Vec<(Op, Row)>,
    dead_letters: Vec<DeadLetter>,
    skip: u64,
    commit_time: Option<DateTime<Utc>>,
}

impl FolderSync {
    fn new(src: FilesSource, ctx: &SourceContext) -> Result<Self> {
        let (state, seq) = match &ctx.resume {
            Some(p) => {
                let state: FilesState = serde_json::from_value(p.state.clone()).map_err(|e| {
                    Error::new(
                        ErrorKind::State,
                        format!(
                            "the stored position of source `{}` is not a files position: {e}",
                            ctx.name
                        ),
                    )
                })?;
                // Batches are rebuilt from the files as they are now, which
                // a sink further ahead may not have seen: number them above
                // everything any sink holds.
                (state, p.seq.max(ctx.highest_held))
            }
            None => (FilesState::default(), ctx.highest_held),
        };
        let manifests = ManifestStore::open(&src.state_dir)?;
        let acked_digests = state.digests();
        Ok(FolderSync {
            src,
            state,
            seq,
            manifests,
            acked_digests,
        })
    }

    fn id(&self, table: usize) -> TableId {
        self.src.tables[table].id(&self.src.name)
    }

    fn schema(&self, table: usize) -> Result<Arc<TableSchema>> {
        self.src.tables[table]
            .schema
            .clone()
            .ok_or_else(|| Error::internal("files source run before discover"))
    }

    async fn initial(&mut self, ctx: &SourceContext) -> Result<()> {
        for t in 0..self.src.tables.len() {
            let id = self.id(t);
            ctx.status.set_phase(&id, Phase::Snapshot);
            let files = self.src.list(&self.src.tables[t])?;
            let expected = expected_rows(&self.src.root, &files, self.state.tables.get(&id.name));
            ctx.status.set_snapshot_total(&id, expected);
            if self.src.tables[t].cfg.mode == SyncMode::Full {
                self.full_refresh(t, &files, ctx).await?;
            } else {
                for rel in &files {
                    if ctx.cancel.is_cancelled() {
                        return Ok(());
                    }
                    self.sync_file(t, rel, BatchKind::Snapshot, ctx).await?;
                }
                let gone: Vec<String> = self
                    .state
                    .tables
                    .get(&id.name)
                    .map(|m| m.keys().filter(|k| !files.contains(k)).cloned().collect())
                    .unwrap_or_default();
                for rel in gone {
                    self.sync_file(t, &rel, BatchKind::Stream, ctx).await?;
                }
            }
            let phase = if ctx.follow && self.src.tables[t].cfg.mode == SyncMode::Cdc {
                Phase::Streaming
            } else {
                Phase::Done
            };
            ctx.status.set_phase(&id, phase);
        }
        Ok(())
    }

    /// `full` mode: when anything differs from what was applied, truncate and
    /// load every file again.
    async fn full_refresh(
        &mut self,
        t: usize,
        files: &[String],
        ctx: &SourceContext,
    ) -> Result<()> {
        let name = self.src.tables[t].cfg.name.clone();
        let applied = self.state.tables.get(&name).cloned().unwrap_or_default();
        let mut unchanged = applied.len() == files.len() && applied.values().all(|f| f.done);
        if unchanged {
            for rel in files {
                let meta = std::fs::metadata(self.src.root.join(rel)).ok();
                let same = applied
                    .get(rel)
                    .zip(meta)
                    .is_some_and(|(f, m)| f.size == m.len() && f.mtime_ns == mtime_ns(&m));
                if !same {
                    unchanged = false;
                    break;
                }
            }
        }
        if unchanged {
            info!(table = %name, "full refresh: no file changed since the last run");
            return Ok(());
        }
        let schema = self.schema(t)?;
        self.state.tables.insert(name.clone(), BTreeMap::new());
        let truncate = Change {
            op: Op::Truncate,
            table: schema,
            before: None,
            after: None,
        };
        self.emit(vec![truncate], Vec::new(), BatchKind::Snapshot, None, ctx)
            .await?;
        for rel in files {
            self.sync_file(t, rel, BatchKind::Snapshot, ctx).await?;
        }
        Ok(())
    }

    /// Brings one file's contribution up to date: new, changed, resumed or
    /// removed, inside the table's tracing span.
    async fn sync_file(
        &mut self,
        t: usize,
        rel: &str,
        kind: BatchKind,
        ctx: &SourceContext,
    ) -> Result<()> {
        let span = tracing::info_span!("table", table = %self.src.tables[t].cfg.name, file = rel);
        self.sync_file_in_span(t, rel, kind, ctx)
            .instrument(span)
            .await
    }

    async fn sync_file_in_span(
        &mut self,
        t: usize,
        rel: &str,
        kind: BatchKind,
        ctx: &SourceContext,
    ) -> Result<()> {
        let table_name = self.src.tables[t].cfg.name.clone();
        let prev = self
            .state
            .tables
            .get(&table_name)
            .and_then(|m| m.get(rel))
            .cloned();
        let abs = self.src.root.join(rel);
        let meta = match std::fs::metadata(&abs) {
            Ok(m) if m.is_file() => Some(m),
            _ => None,
        };
        let Some(meta) = meta else {
            if let Some(prev) = prev {
                return self.removed(t, rel, prev, ctx).await;
            }
            return Ok(());
        };
        if let Some(p) = &prev
            && p.done
            && p.size == meta.len()
            && p.mtime_ns == mtime_ns(&meta)
        {
            return Ok(());
        }
        let pending = {
            let table = &self.src.tables[t];
            let schema = self.schema(t)?;
            let format = table.format_of(&abs).ok_or_else(|| FilesError::Table {
                table: table_name.clone(),
                detail: format!("cannot tell the format of {rel}"),
            })?;
            let dialect = table.dialect();
            let manifests = self.manifests.clone();
            let rel_owned = rel.to_owned();
            let prev = prev.clone();
            let meta = meta.clone();
            tokio::task::spawn_blocking(move || {
                read_and_diff(
                    t, &abs, &rel_owned, format, dialect, &schema, prev, &meta, &manifests,
                )
            })
            .await
            .map_err(|_| Error::internal("file reader stopped"))??
        };
        let Some(pending) = pending else {
            // Same content as already applied (touched, not changed).
            if let Some(mut p) = prev {
                p.size = meta.len();
                p.mtime_ns = mtime_ns(&meta);
                self.state
                    .tables
                    .entry(table_name)
                    .or_default()
                    .insert(rel.to_owned(), p);
            }
            return Ok(());
        };
        debug!(table = %table_name, file = rel, changes = pending.changes.len(), "file read");
        self.emit_file(pending, kind, ctx).await
    }

    async fn removed(
        &mut self,
        t: usize,
        rel: &str,
        prev: FileState,
        ctx: &SourceContext,
    ) -> Result<()> {
        let schema = self.schema(t)?;
        let table_name = schema.id.name.clone();
        let mut keys: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for digest in [Some(&prev.digest), prev.base.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(m) = self.manifests.read(&table_name, digest) {
                for (k, _) in m.rows {
                    if seen.insert(k.clone()) {
                        keys.push(k);
                    }
                }
            }
        }
        if schema.key.is_empty() {
            warn!(table = %table_name, file = rel, "file removed; without a key its rows cannot be deleted");
        }
        let changes: Vec<(Op, Row)> = keys
            .iter()
            .filter_map(|k| key_row(&schema, k))
            .map(|row| (Op::Delete, row))
            .collect();
        info!(table = %table_name, file = rel, deletes = changes.len(), "file removed");
        // The removal enters the position with the last batch; deletes
        // re-emitted after a crash are harmless.
        let chunks: Vec<Vec<Change>> = changes
            .chunks(self.src.batch_rows)
            .map(|c| {
                c.iter()
                    .map(|(_, row)| Change {
                        op: Op::Delete,
                        table: schema.clone(),
                        before: Some(row.clone()),
                        after: None,
                    })
                    .collect()
            })
            .collect();
        let last = chunks.len().saturating_sub(1);
        let mut chunks = chunks.into_iter();
        for i in 0..=last {
            if i == last
                && let Some(files) = self.state.tables.get_mut(&table_name)
            {
                files.remove(rel);
            }
            let batch = chunks.next().unwrap_or_default();
            self.emit(batch, Vec::new(), BatchKind::Stream, Some(Utc::now()), ctx)
                .await?;
        }
        Ok(())
    }

    /// Emits a file's changes in batches, recording progress in the state.
    async fn emit_file(&mut self, p: Pending, kind: BatchKind, ctx: &SourceContext) -> Result<()> {
        let schema = self.schema(p.table)?;
        let table_name = schema.id.name.clone();
        let total = p.changes.len() as u64;
        let mut state = p.file_state;
        let mut dead_letters = p.dead_letters;
        let mut offset = p.skip.min(total);
        let mut first = true;
        loop {
            let end = (offset + self.src.batch_rows as u64).min(total);
            let changes: Vec<Change> = p.changes[offset as usize..end as usize]
                .iter()
                .map(|(op, row)| match op {
                    Op::Delete => Change {
                        op: Op::Delete,
                        table: schema.clone(),
                        before: Some(row.clone()),
                        after: None,
                    },
                    op => Change {
                        op: *op,
                        table: schema.clone(),
                        before: None,
                        after: Some(row.clone()),
                    },
                })
                .collect();
            state.emitted = end;
            state.done = end == total;
            self.state
                .tables
                .entry(table_name.clone())
                .or_default()
                .insert(p.rel.clone(), state.clone());
            let letters = if first {
                std::mem::take(&mut dead_letters)
            } else {
                Vec::new()
            };
            if !changes.is_empty() || !letters.is_empty() || first {
                self.emit(changes, letters, kind, p.commit_time, ctx)
                    .await?;
            }
            first = false;
            offset = end;
            if offset >= total {
                return Ok(());
            }
        }
    }

    async fn emit(
        &mut self,
        changes: Vec<Change>,
        dead_letters: Vec<DeadLetter>,
        kind: BatchKind,
        commit_time: Option<DateTime<Utc>>,
        ctx: &SourceContext,
    ) -> Result<()> {
        self.seq += 1;
        let state =
            serde_json::to_value(&self.state).map_err(|e| Error::internal(e.to_string()))?;
        let batch = Batch {
            position: Position {
                seq: self.seq,
                state,
            },
            kind,
            txid: None,
            commit_time,
            changes,
            block: None,
            dead_letters,
            // A file read again (changed, or after a restart) repeats rows.
            inserts_are_new: false,
        };
        tokio::select! {
            sent = ctx.batches.send(batch) => sent.map_err(|_| Error::cancelled()),
            _ = ctx.cancel.cancelled() => Err(Error::cancelled()),
        }
    }

    /// Forgets manifests no acknowledged or pending position refers to.
    fn collect_garbage(&mut self, acked: Option<&Position>) {
        if let Some(p) = acked
            && let Ok(s) = serde_json::from_value::<FilesState>(p.state.clone())
        {
            self.acked_digests = s.digests();
        }
        let mut keep = self.acked_digests.clone();
        keep.extend(self.state.digests());
        self.manifests.retain(&keep);
    }

    async fn follow(&mut self, mut ctx: SourceContext) -> Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let root = self.src.root.clone();
        let mut debouncer =
            notify_debouncer_full::new_debouncer(self.src.debounce, None, move |res| {
                let _ = tx.send(res);
            })
            .map_err(|e| FilesError::Watch {
                path: root.clone(),
                detail: e.to_string(),
            })?;
        debouncer
            .watch(&self.src.root, notify::RecursiveMode::Recursive)
            .map_err(|e| FilesError::Watch {
                path: self.src.root.clone(),
                detail: e.to_string(),
            })?;
        info!(folder = %self.src.root.display(), "watching for changes");
        let cdc: Vec<usize> = (0..self.src.tables.len())
            .filter(|&t| self.src.tables[t].cfg.mode == SyncMode::Cdc)
            .collect();
        // A rescan now and then catches anything the watcher missed.
        let mut rescan = tokio::time::interval(Duration::from_secs(30));
        rescan.tick().await;
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                changed = ctx.acknowledged.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let acked = ctx.acknowledged.borrow_and_update().clone();
                    self.collect_garbage(acked.as_ref());
                }
                _ = rescan.tick() => {
                    for &t in &cdc {
                        let mut files = self.src.list(&self.src.tables[t])?;
                        if let Some(known) = self.state.tables.get(&self.src.tables[t].cfg.name) {
                            files.extend(known.keys().cloned());
                        }
                        files.sort();
                        files.dedup();
                        for rel in files {
                            self.sync_file(t, &rel, BatchKind::Stream, &ctx).await?;
                        }
                    }
                }
                events = rx.recv() => {
                    let Some(events) = events else { return Ok(()) };
                    let events = match events {
                        Ok(events) => events,
                        Err(errors) => {
                            for e in errors {
                                warn!(error = %e, "file watcher error");
                            }
                            continue;
                        }
                    };
                    let mut touched: Vec<String> = events
                        .iter()
                        .flat_map(|e| e.paths.iter())
                        .filter_map(|p| self.src.relative(p))
                        .collect();
                    touched.sort();
                    touched.dedup();
                    for rel in touched {
                        for &t in &cdc {
                            if self.src.tables[t].matcher.is_match(&rel) {
                                self.sync_file(t, &rel, BatchKind::Stream, &ctx).await?;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Rows the snapshot will read from files not yet done (lines, less headers).
fn expected_rows(root: &Path, files: &[String], done: Option<&BTreeMap<String, FileState>>) -> u64 {
    files
        .iter()
        .filter(|f| !done.and_then(|d| d.get(*f)).is_some_and(|s| s.done))
        .filter_map(|f| std::fs::read(root.join(f)).ok())
        .map(|bytes| {
            bytes
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                .saturating_sub(1) as u64
        })
        .sum()
}

fn key_string(schema: &TableSchema, row: &Row) -> String {
    let key: Vec<&Value> = schema.key_of(row);
    serde_json::to_string(&key).unwrap_or_default()
}

/// A row holding only the key values (others NULL), from a key string.
fn key_row(schema: &TableSchema, key: &str) -> Option<Row> {
    let values: Vec<Value> = serde_json::from_str(key).ok()?;
    let mut row = vec![Value::Null; schema.columns.len()];
    for (&i, v) in schema.key.iter().zip(values) {
        row[i] = v;
    }
    Some(row)
}

/// Reads a file and works out the changes it brings relative to what was
/// applied from it before. `None`: nothing to do.
#[allow(clippy::too_many_arguments)]
fn read_and_diff(
    table: usize,
    abs: &Path,
    rel: &str,
    format: FileFormat,
    dialect: CsvDialect,
    schema: &TableSchema,
    prev: Option<FileState>,
    meta: &std::fs::Metadata,
    manifests: &ManifestStore,
) -> Result<Option<Pending>, FilesError> {
    let bytes = std::fs::read(abs).map_err(|e| FilesError::read(abs, e.to_string()))?;
    let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
    if prev.as_ref().is_some_and(|p| p.done && p.digest == digest) {
        return Ok(None);
    }
    let parsed: ParsedFile = format::parse_file(abs, rel, &bytes, format, dialect, schema)?;
    drop(bytes);
    let table_name = &schema.id.name;
    let manifest = Manifest {
        rows: parsed
            .rows
            .iter()
            .map(|r| (key_string(schema, &r.row), r.hash))
            .collect(),
        rejected: parsed
            .dead_letters
            .iter()
            .map(|d| xxhash_rust::xxh3::xxh3_64(d.raw.as_bytes()))
            .collect(),
    };
    manifests.write(table_name, &digest, &manifest)?;
    let commit_time = meta.modified().ok().map(DateTime::<Utc>::from);
    let new_state = |base: Option<String>| FileState {
        digest: digest.clone(),
        base,
        size: meta.len(),
        mtime_ns: mtime_ns(meta),
        emitted: 0,
        done: false,
    };

    // Resuming the same content: redo the same diff and skip what was emitted.
    if let Some(p) = prev.as_ref().filter(|p| p.digest == digest) {
        let base = p.base.as_ref().and_then(|b| manifests.read(table_name, b));
        let changes = diff(schema, base.as_ref(), &parsed, &manifest);
        return Ok(Some(Pending {
            table,
            rel: rel.to_owned(),
            file_state: new_state(p.base.clone()),
            changes,
            dead_letters: Vec::new(),
            skip: p.emitted,
            commit_time,
        }));
    }

    // New content: diff against what the target holds from this file.
    let (base_digest, base): (Option<String>, Option<Manifest>) = match &prev {
        None => (None, None),
        Some(p) if p.done => (
            Some(p.digest.clone()),
            manifests.read(table_name, &p.digest),
        ),
        Some(p) => {
            // Changed while half applied: treat everything it may have written
            // as present (deletes of absent keys are no-ops; rows are upserted).
            let mut merged = Manifest::default();
            for d in [Some(&p.digest), p.base.as_ref()].into_iter().flatten() {
                if let Some(m) = manifests.read(table_name, d) {
                    merged.rows.extend(m.rows.into_iter().map(|(k, _)| (k, 0)));
                    merged.rejected.extend(m.rejected);
                }
            }
            (Some(p.digest.clone()), Some(merged))
        }
    };
    if base_digest.is_some() && base.is_none() {
        warn!(
            file = rel,
            "the manifest of the file's previous content is gone; its rows are upserted and no deletes can be derived"
        );
    }
    let changes = diff(schema, base.as_ref(), &parsed, &manifest);
    let known_rejects: HashSet<u64> = base
        .as_ref()
        .map(|b| b.rejected.iter().copied().collect())
        .unwrap_or_default();
    let dead_letters = parsed
        .dead_letters
        .into_iter()
        .zip(manifest.rejected.iter())
        .filter(|(_, h)| !known_rejects.contains(h))
        .map(|(d, _)| d)
        .collect();
    Ok(Some(Pending {
        table,
        rel: rel.to_owned(),
        // A resumed diff must be the same diff: record the base only when it
        // is one whole manifest.
        file_state: new_state(
            prev.as_ref()
                .filter(|p| p.done && base.is_some())
                .map(|p| p.digest.clone()),
        ),
        changes,
        dead_letters,
        skip: 0,
        commit_time,
    }))
}

/// The changes that turn `base` (what was applied) into `parsed`.
fn diff(
    schema: &TableSchema,
    base: Option<&Manifest>,
    parsed: &ParsedFile,
    manifest: &Manifest,
) -> Vec<(Op, Row)> {
    let Some(base) = base else {
        return parsed
            .rows
            .iter()
            .map(|r| (Op::Insert, r.row.clone()))
            .collect();
    };
    if schema.key.is_empty() {
        // Without a key only appended rows can be told apart.
        return parsed
            .rows
            .iter()
            .skip(base.rows.len())
            .map(|r| (Op::Insert, r.row.clone()))
            .collect();
    }
    let old: HashMap<&str, u64> = base.rows.iter().map(|(k, h)| (k.as_str(), *h)).collect();
    let mut changes = Vec::new();
    for (r, (key, hash)) in parsed.rows.iter().zip(&manifest.rows) {
        match old.get(key.as_str()) {
            None => changes.push((Op::Insert, r.row.clone())),
            Some(h) if h != hash => changes.push((Op::Update, r.row.clone())),
            Some(_) => {}
        }
    }
    let new_keys: HashSet<&str> = manifest.rows.iter().map(|(k, _)| k.as_str()).collect();
    let mut deleted = HashSet::new();
    for (k, _) in &base.rows {
        if !new_keys.contains(k.as_str())
            && deleted.insert(k.as_str())
            && let Some(row) = key_row(schema, k)
        {
            changes.push((Op::Delete, row));
        }
    }
    changes
}
