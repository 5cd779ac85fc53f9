//! Watched-folder source: a folder of CSV, JSON-lines or Parquet files, each
//! table made of the files one glob pattern matches.
//!
//! * First run: every file is read (schema inferred from the first file,
//!   overridable per column) and its rows become inserts.
//! * Then the folder is watched: a new file's rows become inserts, a changed
//!   file is diffed by key against what was applied from it (inserts, updates
//!   and deletes for exactly the rows that differ), and a removed file's keys
//!   become deletes (less those another file of the table holds). Both are
//!   worked out on disk (an external sort of key hashes, see `diff`), so
//!   memory does not grow with the file.
//! * Records that cannot be read (wrong field count, unparsable value, empty
//!   key, invalid JSON) go to the sink's dead-letter table with the file, line,
//!   raw text and reason; the rest of the file still loads.
//! * The position is, per file, the digest of the content applied and how many
//!   of its changes were emitted; a restart skips what is done and resumes a
//!   half-applied file where it stopped.
//!
//! A key present in several files is last-writer-wins; a key one file holds
//! more than once is refused (none of its rows kept, a dead letter). Without
//! a key a changed file only contributes rows appended at its end.

mod config;
mod diff;
mod error;
pub mod format;
pub mod infer;
mod read;
mod spill;
pub mod state;
mod sync;

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
use syncline_engine::connector::{Check, Sample, Source, SourceContext, Start, stopped};
use syncline_engine::model::{
    Change, Column, DataType, DeadLetter, DeadLetterStage, Op, Row, TableId, TableSchema, Value,
};
use syncline_engine::status::Phase;
use syncline_engine::verify::Loaded;
use syncline_engine::{Error, ErrorKind, Result};
use tracing::{Instrument, debug, info, warn};

pub use config::{FilesSourceConfig, FilesTableConfig};
pub use error::FilesError;
use format::CsvDialect;
pub use format::FileFormat;
use state::{FileState, FilesState, ManifestStore};
use sync::FolderSync;

#[derive(Clone)]
struct Table {
    cfg: FilesTableConfig,
    matcher: GlobMatcher,
    /// The CSV field delimiter, checked to be one ASCII byte.
    delimiter: u8,
    schema: Option<Arc<TableSchema>>,
}

impl Table {
    /// The column types the table's `columns` setting declares.
    fn overrides(&self) -> Result<HashMap<String, DataType>, FilesError> {
        self.cfg
            .columns
            .iter()
            .map(|(c, ty)| {
                DataType::parse(ty).map(|d| (c.clone(), d)).ok_or_else(|| FilesError::Table {
                    table: self.cfg.name.clone(),
                    detail: format!(
                        "column `{c}`: unknown type `{ty}` (use boolean, int, bigint, double, decimal(p,s), text, bytes, date, time, timestamp, timestamptz, uuid or json)"
                    ),
                })
            })
            .collect()
    }

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
            delimiter: self.delimiter,
        }
    }
}

/// The files source.
#[derive(Clone)]
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
            // The CSV reader splits on one byte: a wider character would be
            // cut to a byte that means something else.
            let delimiter = u8::try_from(t.delimiter)
                .ok()
                .filter(u8::is_ascii)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "table `{}`: delimiter `{}` is not one ASCII character",
                            t.name, t.delimiter
                        ),
                    )
                })?;
            tables.push(Table {
                cfg: t.clone(),
                matcher,
                delimiter,
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

    /// Which of the tables the pipeline calls `table`.
    fn table_index(&self, table: &str) -> Result<usize> {
        self.tables
            .iter()
            .position(|t| t.cfg.name == table)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("source `{}` has no table `{table}`", self.name),
                )
            })
    }

    fn infer_schema(&self, t: &Table) -> Result<Arc<TableSchema>, FilesError> {
        let id = t.id(&self.name);
        let overrides = t.overrides()?;
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
        // The columns of every file: the first file's, in its order, then
        // those only later files have (a column must not vanish because the
        // first file lacks it). A file that cannot be read is left to be
        // quarantined when it is synced.
        let mut columns: Vec<Column> = Vec::new();
        let mut first_error = None;
        for (i, file) in files.iter().enumerate() {
            let path = self.root.join(file);
            let format = t.format_of(&path).ok_or_else(|| FilesError::Table {
                table: t.cfg.name.clone(),
                detail: format!(
                    "cannot tell the format of {file}; set format = \"csv\", \"jsonl\" or \"parquet\""
                ),
            })?;
            // Types come from the first file's leading records; later files
            // are read only far enough for their header.
            let limit = if i == 0 { INFER_BYTES } else { HEADER_BYTES };
            let found = read_prefix(&path, format, limit).and_then(|bytes| {
                format::infer_columns(&path, &bytes, format, t.dialect(), &|c| {
                    overrides.get(c).cloned()
                })
            });
            match found {
                Ok(found) => {
                    for c in found {
                        if !columns.iter().any(|have| have.name == c.name) {
                            columns.push(c);
                        }
                    }
                }
                Err(e) => {
                    warn!(table = %t.cfg.name, file = %file, error = %e, "columns not inferred from this file");
                    first_error.get_or_insert(e);
                }
            }
        }
        if columns.is_empty()
            && let Some(e) = first_error
        {
            return Err(e);
        }
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
                    detail: format!("`columns` names `{c}`, which none of its files has"),
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

/// How much of a file's start its column types are inferred from.
const INFER_BYTES: u64 = 4 << 20;
/// How much of a later file's start is read for its header.
const HEADER_BYTES: u64 = 64 << 10;

/// The columns `path` brings that `schema` lacks (a file that arrived or
/// changed with a column more), inferred as at discovery: the header from
/// the file's start and, only when it names a new column, the types from
/// the first [`INFER_BYTES`]. None when the file cannot be read (reading it
/// for its rows quarantines it).
fn added_columns(
    path: &Path,
    format: FileFormat,
    dialect: CsvDialect,
    overrides: &HashMap<String, DataType>,
    schema: &TableSchema,
) -> Vec<Column> {
    let new_in = |limit| -> Vec<Column> {
        read_prefix(path, format, limit)
            .and_then(|bytes| {
                format::infer_columns(path, &bytes, format, dialect, &|c| {
                    overrides.get(c).cloned()
                })
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|c| schema.column_index(&c.name).is_none())
            .collect()
    };
    if new_in(HEADER_BYTES).is_empty() {
        return Vec::new();
    }
    new_in(INFER_BYTES)
}

/// `schema` with the `added` columns (nullable), as its next version.
fn evolved(schema: &TableSchema, added: Vec<Column>) -> Arc<TableSchema> {
    let mut columns = schema.columns.clone();
    columns.extend(added.into_iter().map(|c| Column {
        nullable: true,
        ..c
    }));
    Arc::new(TableSchema {
        id: schema.id.clone(),
        columns,
        key: schema.key.clone(),
        version: schema.version + 1,
    })
}

/// Up to `limit` bytes from the start of `path`, cut after the last whole
/// line (the whole file when it is shorter); nothing for Parquet, whose
/// columns come from its metadata.
fn read_prefix(path: &Path, format: FileFormat, limit: u64) -> Result<Vec<u8>, FilesError> {
    use std::io::Read as _;
    if format == FileFormat::Parquet {
        return Ok(Vec::new());
    }
    let file = std::fs::File::open(path).map_err(|e| FilesError::read(path, e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| FilesError::read(path, e.to_string()))?;
    if bytes.len() as u64 == limit
        && let Some(end) = bytes.iter().rposition(|b| *b == b'\n')
    {
        bytes.truncate(end + 1);
    }
    Ok(bytes)
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
        let i = self.table_index(table)?;
        let schema = self.infer_schema(&self.tables[i])?;
        let t = &self.tables[i];
        // Every file's rows, in file order, as a stream; a deterministic
        // sample of them kept as they go by.
        let mut sample = Sample::new(limit, seed);
        for rel in self.list(t)? {
            let abs = self.root.join(&rel);
            let Some(format) = t.format_of(&abs) else {
                continue;
            };
            let file =
                std::fs::File::open(&abs).map_err(|e| FilesError::read(&abs, e.to_string()))?;
            format::stream_records(&abs, &rel, file, format, t.dialect(), &schema, |record| {
                if let format::Record::Row(r) = record {
                    sample.offer(r.row);
                }
                true
            })?;
        }
        let rows = sample.rows();
        Ok((schema, rows))
    }

    async fn reader(
        &mut self,
        table: &str,
    ) -> Result<(
        Arc<TableSchema>,
        Box<dyn syncline_engine::verify::RowReader>,
    )> {
        let i = self.table_index(table)?;
        let schema = self.infer_schema(&self.tables[i])?;
        let mut reader = FolderReader {
            source: self.clone(),
            table: i,
            schema: schema.clone(),
            rows: Loaded::new(Vec::new()),
        };
        reader.rows = Loaded::new(reader.load().await?);
        Ok((schema, Box::new(reader)))
    }

    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<()> {
        let cancel = ctx.cancel.clone();
        let run = async {
            let mut sync = FolderSync::new(*self, &ctx)?;
            let watch = if ctx.follow {
                Some(sync.watch()?)
            } else {
                None
            };
            sync.initial(&ctx).await?;
            match watch {
                Some(watch) if !ctx.cancel.is_cancelled() => sync.follow(watch, ctx).await,
                _ => Ok(()),
            }
        };
        stopped(run.await, &cancel)
    }
}

/// A table as the folder holds it now, for `syncline verify`: every row
/// the pipeline keeps, read whole and sorted by key (memory holds the
/// table). Files are read in order and a later file's row replaces an
/// earlier one's of the same key; a key a file holds twice is left out, as
/// the source refuses it; records that cannot be read are left out (they
/// are dead letters of the pipeline).
struct FolderReader {
    source: FilesSource,
    table: usize,
    schema: Arc<TableSchema>,
    rows: Loaded,
}

impl FolderReader {
    async fn load(&self) -> Result<Vec<Row>> {
        let source = self.source.clone();
        let i = self.table;
        let schema = self.schema.clone();
        tokio::task::spawn_blocking(move || source.current_rows(i, &schema))
            .await
            .map_err(|_| Error::internal("the folder reader stopped"))?
            .map_err(Error::from)
    }
}

impl FilesSource {
    /// See [`FolderReader`].
    fn current_rows(&self, i: usize, schema: &Arc<TableSchema>) -> Result<Vec<Row>, FilesError> {
        let t = &self.tables[i];
        let key_of =
            |row: &Row| -> Vec<Value> { schema.key.iter().map(|&k| row[k].clone()).collect() };
        let id = |key: &[Value]| serde_json::to_string(key).unwrap_or_default();
        let mut rows: HashMap<String, Row> = HashMap::new();
        for rel in self.list(t)? {
            let abs = self.root.join(&rel);
            let Some(format) = t.format_of(&abs) else {
                continue;
            };
            let file =
                std::fs::File::open(&abs).map_err(|e| FilesError::read(&abs, e.to_string()))?;
            let mut in_file: HashMap<String, Row> = HashMap::new();
            let mut twice: HashSet<String> = HashSet::new();
            format::stream_records(&abs, &rel, file, format, t.dialect(), schema, |record| {
                if let format::Record::Row(r) = record {
                    let k = id(&key_of(&r.row));
                    if in_file.insert(k.clone(), r.row).is_some() {
                        twice.insert(k);
                    }
                }
                true
            })?;
            // The source refuses such a key from this file; another file's
            // row of it stays.
            for k in &twice {
                in_file.remove(k);
            }
            rows.extend(in_file);
        }
        let mut out: Vec<Row> = rows.into_values().collect();
        out.sort_by(|a, b| syncline_engine::verify::compare_keys(&key_of(a), &key_of(b)));
        Ok(out)
    }
}

#[async_trait]
impl syncline_engine::verify::RowReader for FolderReader {
    async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
        self.rows.page(limit).await
    }

    async fn rows(&mut self, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let wanted: HashSet<String> = keys
            .iter()
            .map(|k| serde_json::to_string(k).unwrap_or_default())
            .collect();
        let key = &self.schema.key;
        Ok(self
            .load()
            .await?
            .into_iter()
            .filter(|r| {
                let k: Vec<&Value> = key.iter().map(|&i| &r[i]).collect();
                wanted.contains(&serde_json::to_string(&k).unwrap_or_default())
            })
            .collect())
    }
}
