//! Transform previews on sampled source rows, with the samples kept loaded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use syncline_duckdb::browse;
use syncline_transform::preview::Preview;
use ts_rs::TS;

use crate::transforms::SampleOptions;

use super::*;

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
                FailureCode::Config,
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
                                op: c.op.into(),
                                before: c.before.clone(),
                                after: c.after.clone(),
                                output: c
                                    .output
                                    .iter()
                                    .map(|o| OutputChange {
                                        op: o.op.into(),
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
