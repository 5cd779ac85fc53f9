//! What the desktop studio asks of pipelines, as plain functions over the
//! catalog: connector kinds with their form schemas, the bundled sample,
//! checks and discovery of one section of an unfinished pipeline, drafts
//! rendered to TOML, validation, open and save, transform previews, DuckDB
//! browsing and the dead-letter queue. `src-tauri` wraps each in a command
//! of a few lines; the types here are its DTOs (camelCase, with TypeScript
//! bindings). Errors are a [`Failure`]: a contract code and a plain message.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use syncline_duckdb::browse::{self, BrowseError};
use syncline_engine::config::{self, ConfigErrors, SourceSpec};
use syncline_engine::connector::{Check, CheckOutcome};
use syncline_engine::model::Op;
use syncline_engine::{Error, ErrorKind};
use syncline_transform::preview::Preview;
use ts_rs::TS;

use crate::dlq::{ReplayReport, TargetDeadLetters};
use crate::transforms::{SampleOptions, TransformCheckError};
use crate::{Pipeline, SourceConfig, TargetConfig, build_sink, build_source, secrets};

/// A failed desktop call: a code from the command contract (`config`,
/// `connection`, `io`, `sql`, `not_found`, `busy`, `internal`) and a plain
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct Failure {
    /// Contract code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Failure {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("not_found", message)
    }

    /// `busy`.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new("busy", message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("internal", message)
    }

    /// `io`.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new("io", message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            ErrorKind::Config | ErrorKind::Schema => "config",
            ErrorKind::Connection | ErrorKind::Precondition => "connection",
            ErrorKind::Io | ErrorKind::State => "io",
            ErrorKind::Cancelled | ErrorKind::Internal => "internal",
        };
        Failure::new(code, e.chain())
    }
}

impl From<&ConfigErrors> for Failure {
    fn from(errors: &ConfigErrors) -> Self {
        let lines: Vec<String> = problems(errors)
            .into_iter()
            .map(|p| match (p.line, &p.field) {
                (Some(line), Some(field)) => format!("line {line}, `{field}`: {}", p.message),
                (Some(line), None) => format!("line {line}: {}", p.message),
                (None, Some(field)) => format!("`{field}`: {}", p.message),
                (None, None) => p.message,
            })
            .collect();
        Failure::new("config", lines.join("\n"))
    }
}

impl From<BrowseError> for Failure {
    fn from(e: BrowseError) -> Self {
        let code = match &e {
            BrowseError::NotFound(_) => "not_found",
            BrowseError::Open { .. } => "io",
            BrowseError::Sql(_) => "sql",
        };
        Failure::new(code, e.to_string())
    }
}

/// Runs blocking work (DuckDB, files) off the async threads.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, Failure> + Send + 'static,
) -> Result<R, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::internal(format!("a worker stopped: {e}")))?
}

// ----------------------------------------------------------------------
// Connectors and the wizard

/// A connector kind and the JSON Schema of its section, for a form.
#[derive(Debug, Clone, Serialize, TS)]
pub struct KindInfo {
    /// The `kind` value.
    pub kind: String,
    /// Where it goes in a pipeline.
    #[ts(type = r#""source" | "target""#)]
    pub role: String,
    /// Short name for people.
    pub title: String,
    /// What it is.
    pub description: String,
    /// Schema of the section (`$defs` kept alongside).
    #[ts(type = "Record<string, unknown>")]
    pub schema: serde_json::Value,
}

fn title(kind: &str) -> &'static str {
    match kind {
        "files" => "Files",
        "postgres" => "PostgreSQL",
        "duckdb" => "DuckDB",
        _ => "Connector",
    }
}

/// Every source and target kind with its form schema.
pub fn kinds() -> Vec<KindInfo> {
    use syncline_engine::config::ConnectorSet;
    let role = |role: &str, kinds: Vec<config::KindSchema>| {
        kinds
            .into_iter()
            .map(|k| KindInfo {
                kind: k.kind.to_owned(),
                role: role.to_owned(),
                title: title(k.kind).to_owned(),
                description: k
                    .schema
                    .get("description")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                schema: k.schema,
            })
            .collect::<Vec<_>>()
    };
    let mut out = role("source", SourceConfig::kinds());
    out.extend(role("target", TargetConfig::kinds()));
    out
}

/// The bundled sample, written for the wizard.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SampleInfo {
    /// The folder the sample was written into (the pipeline belongs here).
    pub dir: String,
    /// The source's name in `text`.
    pub source_name: String,
    /// The sample pipeline: its files source and a local DuckDB target.
    pub text: String,
}

/// Writes the bundled sample shop's files into `dir/shop/` (existing files
/// are kept) and returns its pipeline text, to be saved in `dir`.
pub async fn create_sample(dir: PathBuf) -> Result<SampleInfo, Failure> {
    blocking(move || {
        syncline_sample::write_data(&dir, syncline_sample::SampleSize::DEFAULT)
            .map_err(|e| Failure::io(format!("{e:#}")))?;
        Ok(SampleInfo {
            dir: dir.display().to_string(),
            source_name: "shop".to_owned(),
            text: syncline_sample::PIPELINE.to_owned(),
        })
    })
    .await
}

/// One pre-flight check.
#[derive(Debug, Clone, Serialize, TS)]
pub struct CheckItem {
    /// What was checked.
    pub name: String,
    /// How it went.
    #[ts(type = r#""pass" | "warn" | "fail""#)]
    pub outcome: String,
    /// What was found.
    pub detail: String,
    /// How to fix it, for a warning or failure.
    pub fix: Option<String>,
}

impl From<Check> for CheckItem {
    fn from(c: Check) -> Self {
        CheckItem {
            name: c.name,
            outcome: match c.outcome {
                CheckOutcome::Pass => "pass",
                CheckOutcome::Warn => "warn",
                CheckOutcome::Fail => "fail",
            }
            .to_owned(),
            detail: c.detail,
            fix: c.fix,
        }
    }
}

/// The pipeline name written in `text`, or `draft` while it has none.
fn draft_name(path: &Path, text: &str) -> String {
    config::document_json(path, text)
        .ok()
        .and_then(|j| j.get("name").and_then(|n| n.as_str()).map(str::to_owned))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "draft".to_owned())
}

fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn section_role(path: &Path, text: &str, name: &str) -> Result<&'static str, Failure> {
    let json = config::document_json(path, text).map_err(|e| Failure::from(&e))?;
    if json.pointer(&format!("/sources/{name}")).is_some() {
        Ok("sources")
    } else if json.pointer(&format!("/targets/{name}")).is_some() {
        Ok("targets")
    } else {
        Err(Failure::new(
            "config",
            format!("the pipeline has no source or target named `{name}`"),
        ))
    }
}

fn source_of(
    path: &Path,
    text: &str,
    name: &str,
) -> Result<Box<dyn syncline_engine::connector::Source>, Failure> {
    secrets::install();
    let config: SourceConfig =
        config::parse_section(path, text, "sources", name).map_err(|e| Failure::from(&e))?;
    let pipeline = draft_name(path, text);
    let base = base_dir(path);
    let state = base.join(".syncline").join(&pipeline);
    Ok(build_source(name, &config, &pipeline, &base, &state)?)
}

/// Pre-flight checks of one source or target section of `text` (the rest
/// of the pipeline may be unfinished).
pub async fn test_connection(
    path: &Path,
    text: &str,
    name: &str,
) -> Result<Vec<CheckItem>, Failure> {
    let checks = match section_role(path, text, name)? {
        "sources" => source_of(path, text, name)?.check().await,
        _ => {
            secrets::install();
            let config: TargetConfig = config::parse_section(path, text, "targets", name)
                .map_err(|e| Failure::from(&e))?;
            let mut sink = build_sink(&config, &draft_name(path, text), &base_dir(path));
            sink.check().await
        }
    };
    Ok(checks.into_iter().map(CheckItem::from).collect())
}

/// A column of a discovered table.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredColumn {
    /// Column name.
    pub name: String,
    /// Engine type, as written in pipeline files.
    pub data_type: String,
    /// Part of the key.
    pub key: bool,
    /// May hold NULL.
    pub nullable: bool,
}

/// A table a source offers.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredTable {
    /// Table name within the source.
    pub name: String,
    /// Its columns.
    pub columns: Vec<DiscoveredColumn>,
    /// Sync modes the source supports.
    pub modes: Vec<String>,
    /// The mode used when none is chosen.
    pub default_mode: String,
}

/// The tables one source section of `text` offers.
pub async fn discover(
    path: &Path,
    text: &str,
    name: &str,
) -> Result<Vec<DiscoveredTable>, Failure> {
    let config: SourceConfig =
        config::parse_section(path, text, "sources", name).map_err(|e| Failure::from(&e))?;
    let modes: Vec<String> = config
        .supported_modes()
        .iter()
        .map(|m| m.as_str().to_owned())
        .collect();
    let tables = source_of(path, text, name)?.discover().await?;
    Ok(tables
        .iter()
        .map(|t| DiscoveredTable {
            name: t.id.name.clone(),
            columns: t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| DiscoveredColumn {
                    name: c.name.clone(),
                    data_type: c.data_type.to_string(),
                    key: t.key.contains(&i),
                    nullable: c.nullable,
                })
                .collect(),
            modes: modes.clone(),
            default_mode: config::SyncMode::default().as_str().to_owned(),
        })
        .collect())
}

/// A problem in a pipeline, where it is.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Problem {
    /// 1-based line, where known.
    pub line: Option<u32>,
    /// 1-based column, where known.
    pub column: Option<u32>,
    /// Field path, e.g. `sources.shop.tables[0].key`.
    pub field: Option<String>,
    /// What is wrong (and how to fix it, where there is something to say).
    pub message: String,
}

/// Every error of `errors` as a [`Problem`].
pub fn problems(errors: &ConfigErrors) -> Vec<Problem> {
    errors
        .errors
        .iter()
        .map(|e| {
            let at = errors.line_column(e);
            Problem {
                line: at.map(|(l, _)| u32::try_from(l).unwrap_or(u32::MAX)),
                column: at.map(|(_, c)| u32::try_from(c).unwrap_or(u32::MAX)),
                field: (!e.field.is_empty()).then(|| e.field.clone()),
                message: match &e.help {
                    Some(help) => format!("{} (help: {help})", e.message),
                    None => e.message.clone(),
                },
            }
        })
        .collect()
}

/// A draft rendered to TOML, with what is still wrong in it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct Rendered {
    /// Canonical TOML.
    pub text: String,
    /// Problems found validating `text` (empty: valid).
    pub problems: Vec<Problem>,
}

/// Renders a draft (the pipeline as JSON) to canonical TOML and validates
/// it. A secret written as a value is refused (code `config`).
pub fn render_pipeline(draft: &serde_json::Value) -> Result<Rendered, Failure> {
    let text = config::render_draft(draft).map_err(|e| {
        let field = if e.field.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", e.field)
        };
        let help = e.help.map(|h| format!(" ({h})")).unwrap_or_default();
        Failure::new("config", format!("{field}{}{help}", e.message))
    })?;
    let problems = match crate::parse(Path::new("pipeline.toml"), text.clone()) {
        Ok(_) => Vec::new(),
        Err(errors) => problems(&errors),
    };
    Ok(Rendered { text, problems })
}

/// Every problem of pipeline `text` as if saved at `path`; transforms are
/// checked against the real source tables where the sources can be read.
pub async fn validate_pipeline(path: &Path, text: String) -> Result<Vec<Problem>, Failure> {
    let pipeline = match crate::parse(path, text) {
        Ok(p) => p,
        Err(errors) => return Ok(problems(&errors)),
    };
    match crate::transforms::check(&pipeline).await {
        Ok(_) | Err(TransformCheckError::Source(_)) => Ok(Vec::new()),
        Err(TransformCheckError::Invalid(errors)) => Ok(problems(&errors)),
    }
}

/// An opened pipeline file.
#[derive(Debug, Clone, Serialize, TS)]
pub struct OpenedPipeline {
    /// Where it is.
    pub path: String,
    /// Its text, exactly as in the file.
    pub text: String,
    /// Its structure as JSON, for the forms.
    #[ts(type = "Record<string, unknown>")]
    pub draft: serde_json::Value,
}

/// Reads a pipeline file (its TOML syntax is checked, nothing else).
pub async fn open_pipeline(path: PathBuf) -> Result<OpenedPipeline, Failure> {
    blocking(move || {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::not_found(format!("{} does not exist", path.display()))
            } else {
                Failure::io(format!("cannot read {}: {e}", path.display()))
            }
        })?;
        let draft = config::document_json(&path, &text).map_err(|e| Failure::from(&e))?;
        Ok(OpenedPipeline {
            path: path.display().to_string(),
            text,
            draft,
        })
    })
    .await
}

/// Writes `text` to `path` byte for byte (through a temporary file, so a
/// reader never sees half of it).
pub async fn save_pipeline(path: PathBuf, text: String) -> Result<(), Failure> {
    blocking(move || {
        let io = |e: std::io::Error| Failure::io(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("toml.partial");
        std::fs::write(&tmp, text.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    })
    .await
}

/// Stores a secret in the OS keyring; returns the reference to write.
pub async fn store_secret(name: String, value: String) -> Result<String, Failure> {
    blocking(move || secrets::store(&name, &value).map_err(Failure::io)).await
}

// ----------------------------------------------------------------------
// Preview

/// A column and its type.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Type name.
    pub data_type: String,
}

/// Where the SQL went wrong.
#[derive(Debug, Clone, Serialize, TS)]
pub struct SqlProblem {
    /// What is wrong (and how to fix it).
    pub message: String,
    /// 1-based line in the SQL.
    pub line: Option<u32>,
    /// 1-based column on that line.
    pub column: Option<u32>,
}

/// One change the target would receive from a recent change.
#[derive(Debug, Clone, Serialize, TS)]
pub struct OutputChange {
    /// Its operation.
    pub op: Op,
    /// The row (the key for deletes).
    #[ts(type = "unknown")]
    pub row: serde_json::Value,
}

/// A recent change of the input table and what the transform makes of it.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RecentChange {
    /// Its operation.
    pub op: Op,
    /// The row before, as JSON.
    #[ts(type = "unknown")]
    pub before: serde_json::Value,
    /// The row after, as JSON.
    #[ts(type = "unknown")]
    pub after: serde_json::Value,
    /// What the target receives.
    pub output: Vec<OutputChange>,
    /// Why the transform rejected it (a dead letter).
    pub error: Option<String>,
}

/// A transform run on sampled rows.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PreviewResult {
    /// Output columns with their engine types.
    pub columns: Vec<ColumnInfo>,
    /// Output key columns.
    pub key: Vec<String>,
    /// Sampled input rows.
    pub input_rows: u64,
    /// Output rows.
    pub output_rows: u64,
    /// Output rows (decimals, timestamps and other non-numbers as text).
    #[ts(type = "Array<Array<unknown>>")]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Recent changes and their output.
    pub recent_changes: Vec<RecentChange>,
    /// Why the SQL produced nothing, if it failed.
    pub error: Option<SqlProblem>,
    /// Time to run the SQL, in milliseconds.
    pub elapsed_ms: f64,
}

type PreviewKey = (PathBuf, String, u64, u64);
type Session = Arc<Mutex<Preview>>;

/// Samples kept loaded at most; the least recently used goes first.
const KEPT_PREVIEWS: usize = 4;

/// Loaded preview samples, kept so editing the SQL and running it again is
/// fast (the last few, each an in-memory DuckDB database). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Previews {
    loaded: Arc<Mutex<Vec<(PreviewKey, Session)>>>,
}

impl Previews {
    /// No samples loaded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `sql` as transform `transform` of pipeline `text` (saved at
    /// `path`; it may have no targets yet) on `limit` sampled rows (`seed`
    /// picks which). The sample is loaded once per pipeline file,
    /// transform, input, source settings, limit and seed.
    pub async fn run(
        &self,
        path: &Path,
        text: String,
        transform: &str,
        sql: String,
        limit: usize,
        seed: u64,
    ) -> Result<PreviewResult, Failure> {
        let pipeline = crate::parse_draft(path, text).map_err(|e| Failure::from(&e))?;
        let spec = pipeline.spec.transforms.get(transform).ok_or_else(|| {
            Failure::new(
                "config",
                format!("the pipeline has no transform `{transform}`"),
            )
        })?;
        let origin = spec.input.split('.').next().unwrap_or_default();
        let source_section = pipeline
            .document
            .json()
            .pointer(&format!("/sources/{origin}"))
            .map(|s| s.to_string())
            .unwrap_or_default();
        let identity = format!(
            "{transform}\u{0}{}\u{0}{}\u{0}{source_section}",
            spec.input,
            spec.lookups.join(",")
        );
        let key: PreviewKey = (pipeline.path.clone(), identity, limit as u64, seed);
        let cached = {
            let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            let found = loaded.iter().position(|(k, _)| *k == key);
            found.map(|i| {
                // Most recently used last.
                let entry = loaded.remove(i);
                let session = entry.1.clone();
                loaded.push(entry);
                session
            })
        };
        let session = match cached {
            Some(s) => s,
            None => {
                let options = SampleOptions {
                    limit,
                    seed,
                    ..SampleOptions::default()
                };
                let loaded = crate::transforms::preview(&pipeline, transform, options).await?;
                let loaded = Arc::new(Mutex::new(loaded));
                let mut kept = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
                kept.retain(|(k, _)| *k != key);
                if kept.len() >= KEPT_PREVIEWS {
                    kept.remove(0);
                }
                kept.push((key, loaded.clone()));
                loaded
            }
        };
        blocking(move || {
            let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(match session.run(&sql) {
                Ok(out) => {
                    let (rows, _) = browse::batch_rows(&out.batches, usize::MAX);
                    PreviewResult {
                        columns: out
                            .columns
                            .iter()
                            .map(|c| ColumnInfo {
                                name: c.name.clone(),
                                data_type: c.data_type.to_string(),
                            })
                            .collect(),
                        key: out.key.clone(),
                        input_rows: out.input_rows as u64,
                        output_rows: out.output_rows as u64,
                        rows,
                        recent_changes: out
                            .changes
                            .iter()
                            .map(|c| RecentChange {
                                op: c.op,
                                before: c.before.clone(),
                                after: c.after.clone(),
                                output: c
                                    .output
                                    .iter()
                                    .map(|o| OutputChange {
                                        op: o.op,
                                        row: o.row.clone(),
                                    })
                                    .collect(),
                                error: c.error.clone(),
                            })
                            .collect(),
                        error: None,
                        elapsed_ms: out.elapsed_ms,
                    }
                }
                Err(problem) => PreviewResult {
                    columns: Vec::new(),
                    key: Vec::new(),
                    input_rows: session.sample_rows() as u64,
                    output_rows: 0,
                    rows: Vec::new(),
                    recent_changes: Vec::new(),
                    error: Some(SqlProblem {
                        message: match &problem.help {
                            Some(help) => format!("{} (help: {help})", problem.message),
                            None => problem.message.clone(),
                        },
                        line: problem
                            .sql
                            .as_ref()
                            .and_then(|s| s.line)
                            .map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
                        column: problem
                            .sql
                            .as_ref()
                            .and_then(|s| s.column)
                            .map(|c| u32::try_from(c).unwrap_or(u32::MAX)),
                    }),
                    elapsed_ms: 0.0,
                },
            })
        })
        .await
    }
}

// ----------------------------------------------------------------------
// Data

/// A table of a DuckDB database.
#[derive(Debug, Clone, Serialize, TS)]
pub struct TableInfo {
    /// DuckDB schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Rows it holds.
    pub rows: u64,
    /// Its columns.
    pub columns: Vec<ColumnInfo>,
}

/// What an ad-hoc query returned.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    /// Result columns with DuckDB's type names.
    pub columns: Vec<ColumnInfo>,
    /// Rows (decimals, timestamps and other non-numbers as text).
    #[ts(type = "Array<Array<unknown>>")]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows existed than `limit`.
    pub truncated: bool,
    /// Time to run it, in milliseconds.
    pub elapsed_ms: f64,
}

fn columns(columns: Vec<browse::ColumnType>) -> Vec<ColumnInfo> {
    columns
        .into_iter()
        .map(|c| ColumnInfo {
            name: c.name,
            data_type: c.data_type,
        })
        .collect()
}

/// The tables of the DuckDB file `database`, also while a pipeline of this
/// process writes it.
pub async fn list_tables(database: PathBuf) -> Result<Vec<TableInfo>, Failure> {
    blocking(move || {
        Ok(browse::list_tables(&database)?
            .into_iter()
            .map(|t| TableInfo {
                schema: t.schema,
                name: t.name,
                rows: t.rows,
                columns: columns(t.columns),
            })
            .collect())
    })
    .await
}

/// Runs `sql` on the DuckDB file `database`, returning at most `limit` rows.
pub async fn run_query(
    database: PathBuf,
    sql: String,
    limit: usize,
) -> Result<QueryResult, Failure> {
    blocking(move || {
        let q = browse::run_query(&database, &sql, limit)?;
        Ok(QueryResult {
            columns: columns(q.columns),
            rows: q.rows,
            truncated: q.truncated,
            elapsed_ms: q.elapsed_ms,
        })
    })
    .await
}

// ----------------------------------------------------------------------
// Dead letters

fn parsed(path: &Path, text: String) -> Result<Pipeline, Failure> {
    crate::parse(path, text).map_err(|e| Failure::from(&e))
}

/// Every target's kept rows.
pub async fn dlq_list(path: &Path, text: String) -> Result<Vec<TargetDeadLetters>, Failure> {
    Ok(crate::dlq::list(&parsed(path, text)?, None).await?)
}

/// Replays every kept row of `target` (all targets when `None`).
pub async fn dlq_replay(
    path: &Path,
    text: String,
    target: Option<&str>,
) -> Result<Vec<ReplayReport>, Failure> {
    Ok(crate::dlq::replay(&parsed(path, text)?, target, None).await?)
}

/// Removes kept rows `ids` of `target` without applying them; returns how
/// many were removed.
pub async fn dlq_discard(
    path: &Path,
    text: String,
    target: &str,
    ids: &[u64],
) -> Result<u64, Failure> {
    let removed = crate::dlq::discard(&parsed(path, text)?, Some(target), Some(ids)).await?;
    Ok(removed.iter().map(|(_, n)| n).sum())
}
