//! Pipeline files: the typed model, loading with complete validation, and
//! byte-for-byte write-back.
//!
//! A pipeline file is TOML. Loading it checks everything before anything runs
//! and reports every problem at once, each with the file, line, column and
//! field path (see [`ConfigErrors`]). Connector sections are typed by the
//! connector crates; the app crate (its kind registry) ties `kind = "..."` to those types
//! through [`ConnectorSet`].

mod document;
mod draft;
mod errors;
mod schema_errors;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use document::SpannedDocument;
pub use draft::render_draft;
pub use errors::{ConfigError, ConfigErrors};
pub use secret::{Secret, SecretRef, set_keyring_lookup};

/// How a source table is kept in sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Copy the table once, then apply every change from the change log
    /// (or, for files, from every new, changed and removed file).
    #[default]
    Cdc,
    /// Copy rows whose `cursor` column is greater than the last value seen.
    /// Deletes are not seen.
    Incremental,
    /// Copy the whole table on every run, replacing what the target holds.
    Full,
}

impl SyncMode {
    /// The name used in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Cdc => "cdc",
            SyncMode::Incremental => "incremental",
            SyncMode::Full => "full",
        }
    }
}

/// How a target writes the changes it receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Keep one row per key: inserts and updates replace, deletes remove.
    /// Every input table needs a key.
    #[default]
    Upsert,
    /// Append every change as a new row; nothing is updated or removed.
    Append,
    /// Keep every version of every row with its operation, source position
    /// and commit time.
    History,
}

impl WriteMode {
    /// The name used in pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Upsert => "upsert",
            WriteMode::Append => "append",
            WriteMode::History => "history",
        }
    }
}

/// A SQL transform over one input table, run by an embedded DuckDB on every
/// batch. Its output is a table named after the transform; targets take it
/// by listing the transform's name in `inputs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// The input table, as `source.table`. The SQL reads it as `source`.
    pub input: String,
    /// A `SELECT` over the relation `source`. Its output must keep the input's
    /// key columns, unchanged. It may join lookup files by path relative to
    /// the pipeline file (`read_csv('regions.csv')`) and the lookup tables
    /// listed in `lookups`.
    pub sql: String,
    /// Other source tables (`source.table`) the SQL joins, read by their
    /// table name. They are loaded when the pipeline starts and kept up to
    /// date from their changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<String>,
}

/// A whole pipeline file: its name, sources, transforms and targets, each
/// source and target tagged by its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec<S, T> {
    /// Pipeline name: letters, digits, `_` and `-`. It names the pipeline's
    /// checkpoints, state folder and (for databases) replication slots.
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9_-]{0,62}$"))]
    pub name: String,
    /// What the pipeline is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where data comes from, by name.
    #[schemars(length(min = 1))]
    pub sources: BTreeMap<String, S>,
    /// SQL transforms, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub transforms: BTreeMap<String, TransformSpec>,
    /// Where data goes, by name.
    #[schemars(length(min = 1))]
    pub targets: BTreeMap<String, T>,
    /// Stop the pipeline once more than this many rows are kept in the
    /// dead-letter queue (rows a transform or a target type rejected, or
    /// records a source could not read). Unset: keep going, however many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dead_letters: Option<u64>,
}

/// A table a source declares, as the engine needs to know it for validation
/// and planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDecl {
    /// Table name within its source.
    pub name: String,
    /// Key column names declared in the file (empty: none declared).
    pub key: Vec<String>,
    /// The source finds the key itself (a database's primary key) when none
    /// is declared; checked when the pipeline starts rather than here.
    pub key_from_source: bool,
    /// Sync mode.
    pub mode: SyncMode,
    /// Cursor column for incremental mode.
    pub cursor: Option<String>,
    /// JSON pointer of the table's declaration, relative to its source
    /// section (e.g. `/tables/0`), for error messages.
    pub pointer: String,
}

/// What the engine asks of a source connector's config.
pub trait SourceSpec {
    /// The connector kind (`files`, `postgres`, ...).
    fn kind(&self) -> &'static str;
    /// Declared tables.
    fn tables(&self) -> Vec<TableDecl>;
    /// Sync modes this connector implements.
    fn supported_modes(&self) -> &'static [SyncMode];
}

/// What the engine asks of a target connector's config.
pub trait TargetSpec {
    /// The connector kind.
    fn kind(&self) -> &'static str;
    /// Inputs: `source` (all its tables), `source.table`, or a transform name.
    fn inputs(&self) -> &[String];
    /// How the target writes.
    fn write_mode(&self) -> WriteMode;
}

/// A connector kind and the JSON Schema of its section (including `kind`).
#[derive(Debug, Clone)]
pub struct KindSchema {
    /// The `kind` value.
    pub kind: &'static str,
    /// Schema of the whole section.
    pub schema: serde_json::Value,
}

/// The set of connector configs of one role (sources or targets): an enum
/// tagged by `kind`, implemented by the app crate.
pub trait ConnectorSet: DeserializeOwned + Serialize + JsonSchema {
    /// Every kind with its section schema.
    fn kinds() -> Vec<KindSchema>;
}

/// The schema of a connector section: `C`'s schema plus `kind = "<kind>"`.
pub fn kind_schema<C: JsonSchema>(kind: &'static str) -> KindSchema {
    let mut schema = schemars::schema_for!(C).to_value();
    if let Some(obj) = schema.as_object_mut() {
        let props = obj
            .entry("properties")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(props) = props.as_object_mut() {
            props.insert(
                "kind".into(),
                serde_json::json!({ "const": kind, "description": "Connector kind." }),
            );
        }
        let required = obj
            .entry("required")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(required) = required.as_array_mut() {
            required.insert(0, serde_json::json!("kind"));
        }
    }
    KindSchema { kind, schema }
}

/// The JSON Schema of a whole pipeline file.
pub fn pipeline_schema<S: ConnectorSet, T: ConnectorSet>() -> serde_json::Value {
    schemars::schema_for!(PipelineSpec<S, T>).to_value()
}

/// A loaded and fully validated pipeline file.
#[derive(Debug, Clone)]
pub struct LoadedPipeline<S, T> {
    /// Where it was read from.
    pub path: PathBuf,
    /// The typed pipeline.
    pub spec: PipelineSpec<S, T>,
    /// The file as written, with comments and layout, for write-back.
    pub document: SpannedDocument,
}

impl<S, T> LoadedPipeline<S, T> {
    /// The folder relative paths in the file are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }

    /// The file as TOML text: byte-for-byte what was read, unless the
    /// document was edited.
    pub fn to_toml(&self) -> String {
        self.document.to_toml()
    }

    /// A problem found after loading (e.g. by a connector or a transform),
    /// reported like a validation error: at the value of `pointer` (a JSON
    /// pointer such as `/transforms/clean/sql`), and `offset` bytes into a
    /// string value when given (for a position inside SQL text).
    pub fn problem(
        &self,
        pointer: &str,
        field: &str,
        offset: Option<usize>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> ConfigErrors {
        let original = self.document.original();
        let span = self.document.span(pointer, false).map(|value| {
            let Some(offset) = offset else {
                return value;
            };
            // Skip the string's opening quotes (and the newline a
            // multi-line string starts with, which TOML drops).
            let raw = &original[value.clone()];
            let mut start = value.start;
            let quotes = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
                3
            } else {
                usize::from(raw.starts_with('"') || raw.starts_with('\''))
            };
            start += quotes;
            if quotes == 3 {
                if original[start..].starts_with("\r\n") {
                    start += 2;
                } else if original[start..].starts_with('\n') {
                    start += 1;
                }
            }
            let at = (start + offset).min(value.end.saturating_sub(1).max(start));
            at..(at + 1).min(value.end)
        });
        ConfigErrors::new(
            &self.path,
            original.to_owned(),
            vec![ConfigError {
                field: field.to_owned(),
                span,
                message: message.into(),
                help,
                secret: false,
            }],
        )
    }
}

/// Reads and validates a pipeline file; on failure returns every problem found.
pub fn load<S, T>(path: &Path) -> Result<LoadedPipeline<S, T>, ConfigErrors>
where
    S: ConnectorSet + SourceSpec,
    T: ConnectorSet + TargetSpec,
{
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::single(
            path,
            String::new(),
            ConfigError::root(format!("cannot read {}: {e}", path.display())),
        )
    })?;
    parse(path, text)
}

/// Validates pipeline text as if read from `path`.
pub fn parse<S, T>(path: &Path, text: String) -> Result<LoadedPipeline<S, T>, ConfigErrors>
where
    S: ConnectorSet + SourceSpec,
    T: ConnectorSet + TargetSpec,
{
    let document = match SpannedDocument::parse(&text) {
        Ok(doc) => doc,
        Err(error) => return Err(ConfigErrors::single(path, text, error)),
    };
    match validate::validate::<S, T>(&document) {
        Ok(spec) => Ok(LoadedPipeline {
            path: path.to_path_buf(),
            spec,
            document,
        }),
        Err(errors) => Err(ConfigErrors::new(path, text, errors)),
    }
}

/// Validates a pipeline being written (the desktop studio's draft) as if
/// read from `path`: like [`parse`], but it may have no targets yet.
pub fn parse_draft<S, T>(path: &Path, text: String) -> Result<LoadedPipeline<S, T>, ConfigErrors>
where
    S: ConnectorSet + SourceSpec,
    T: ConnectorSet + TargetSpec,
{
    let document = match SpannedDocument::parse(&text) {
        Ok(doc) => doc,
        Err(error) => return Err(ConfigErrors::single(path, text, error)),
    };
    match validate::validate_as::<S, T>(&document, true) {
        Ok(spec) => Ok(LoadedPipeline {
            path: path.to_path_buf(),
            spec,
            document,
        }),
        Err(errors) => Err(ConfigErrors::new(path, text, errors)),
    }
}

/// The document's structure as JSON (what [`render_draft`] takes back),
/// checking only the TOML syntax.
pub fn document_json(path: &Path, text: &str) -> Result<serde_json::Value, ConfigErrors> {
    SpannedDocument::parse(text)
        .map(|doc| doc.json().clone())
        .map_err(|error| ConfigErrors::single(path, text.to_owned(), error))
}

/// One connector section of pipeline text, validated on its own:
/// `field` is `sources` or `targets`. The rest of the file may be
/// unfinished. Errors point into `text`.
pub fn parse_section<C: ConnectorSet>(
    path: &Path,
    text: &str,
    field: &str,
    name: &str,
) -> Result<C, ConfigErrors> {
    let document = SpannedDocument::parse(text)
        .map_err(|error| ConfigErrors::single(path, text.to_owned(), error))?;
    validate::section::<C>(&document, field, name)
        .map_err(|errors| ConfigErrors::new(path, text.to_owned(), errors))
}
