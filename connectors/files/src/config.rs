//! The source's configuration: the folder and its tables.

use super::*;

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
