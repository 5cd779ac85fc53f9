//! Verify as the studio shows it: a verdict per target for the pipeline
//! graph's badges, and every difference as rows of a grid.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use syncline_engine::verify::{DiffKind, Options};
use ts_rs::TS;

use super::{ColumnInfo, Failure};
use crate::verify::Outcome;

/// One target's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TargetVerdict {
    /// The target.
    pub target: String,
    /// `in_sync`, `differs`, `failed` or `skipped` (nothing compared).
    pub state: String,
    /// Keys that differ, over its tables.
    pub differing: u64,
    /// In words: per table what was found, or why it was not compared.
    pub detail: String,
}

/// What verifying a pipeline found.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    /// When it was verified (RFC 3339).
    pub verified_at: String,
    /// One verdict per target.
    pub targets: Vec<TargetVerdict>,
    /// The grid's columns: target, table, key, kind, column, source value,
    /// target value.
    pub columns: Vec<ColumnInfo>,
    /// One row per difference (per column of a changed row).
    #[ts(type = "Array<Array<unknown>>")]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Time it took, in milliseconds.
    pub elapsed_ms: f64,
}

/// What a repair did, and the verification after it.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RepairResult {
    /// Per target, in words: rows written and keys deleted.
    pub repaired: Vec<String>,
    /// The verification after the repair.
    pub verified: VerifyResult,
}

/// Repairs what a verification of the pipeline finds (`syncline verify
/// --repair`), then verifies again. `running`: the pipeline runs here, so
/// the repair is refused (it could write an older row over a newer one).
pub async fn repair_pipeline(
    path: &Path,
    text: String,
    running: bool,
) -> Result<RepairResult, Failure> {
    let pipeline = crate::parse(path, text.clone()).map_err(|e| Failure::from(&e))?;
    if running || crate::lifecycle::runs_in_a_process(&pipeline) {
        return Err(Failure::from(syncline_engine::Error::new(
            syncline_engine::ErrorKind::Precondition,
            "the pipeline is running: stop it before a repair (a repair racing its changes could write an older row over a newer one)",
        )));
    }
    let options = Options {
        settle: Duration::ZERO,
        keep: 100_000,
        ..Options::default()
    };
    let report = crate::verify::verify(&pipeline, None, None, &options, |_, _, _| {})
        .await
        .map_err(Failure::from)?;
    let repaired = crate::verify::repair(&pipeline, &report)
        .await
        .map_err(Failure::from)?
        .into_iter()
        .map(|r| format!("{}: {}", r.target, r.summary()))
        .collect();
    let verified = verify_pipeline(path, text, false).await?;
    Ok(RepairResult { repaired, verified })
}

/// Verifies the pipeline (its file `path` with the text `text` as the
/// studio holds it). `running`: the pipeline is running, so keys found
/// different are read again for a few seconds while its changes land.
pub async fn verify_pipeline(
    path: &Path,
    text: String,
    running: bool,
) -> Result<VerifyResult, Failure> {
    let pipeline = crate::parse(path, text).map_err(|e| Failure::from(&e))?;
    let started = Instant::now();
    let options = Options {
        settle: if running || crate::lifecycle::runs_in_a_process(&pipeline) {
            Duration::from_secs(5)
        } else {
            Duration::ZERO
        },
        keep: 10_000,
        ..Options::default()
    };
    let report = crate::verify::verify(&pipeline, None, None, &options, |_, _, _| {})
        .await
        .map_err(Failure::from)?;
    let mut targets: Vec<TargetVerdict> = Vec::new();
    let mut rows = Vec::new();
    for t in &report.tables {
        let at = match targets.iter().position(|v| v.target == t.target) {
            Some(i) => i,
            None => {
                targets.push(TargetVerdict {
                    target: t.target.clone(),
                    state: "skipped".into(),
                    differing: 0,
                    detail: String::new(),
                });
                targets.len() - 1
            }
        };
        let verdict = &mut targets[at];
        let (state, line) = match &t.outcome {
            Outcome::Skipped { reason } => {
                ("skipped", format!("{}: not compared: {reason}", t.table))
            }
            Outcome::Failed { error } => ("failed", format!("{}: {error}", t.table)),
            Outcome::Compared { check, .. } if check.in_sync() => (
                "in_sync",
                format!("{}: equal ({} rows)", t.table, check.source_rows),
            ),
            Outcome::Compared { check, .. } => {
                verdict.differing += check.missing + check.extra + check.changed;
                for d in &check.differences {
                    let kind = match d.kind {
                        DiffKind::Missing => "missing",
                        DiffKind::Extra => "extra",
                        DiffKind::Changed => "changed",
                    };
                    let base = |column: &str, source: &str, target: &str| {
                        vec![
                            t.target.clone().into(),
                            t.table.clone().into(),
                            d.key.to_string().into(),
                            kind.into(),
                            column.into(),
                            source.into(),
                            target.into(),
                        ]
                    };
                    if d.columns.is_empty() {
                        rows.push(base("", "", ""));
                    }
                    for c in &d.columns {
                        rows.push(base(&c.column, &c.source, &c.target));
                    }
                }
                (
                    "differs",
                    format!(
                        "{}: {} missing, {} extra, {} changed",
                        t.table, check.missing, check.extra, check.changed
                    ),
                )
            }
        };
        // The worst state of its tables: failed, differs, in sync, skipped.
        let rank = |s: &str| match s {
            "failed" => 3,
            "differs" => 2,
            "in_sync" => 1,
            _ => 0,
        };
        if rank(state) > rank(&verdict.state) {
            verdict.state = state.into();
        }
        if !verdict.detail.is_empty() {
            verdict.detail.push_str("; ");
        }
        verdict.detail.push_str(&line);
    }
    let column = |name: &str| ColumnInfo {
        name: name.to_owned(),
        data_type: "VARCHAR".to_owned(),
    };
    Ok(VerifyResult {
        verified_at: Utc::now().to_rfc3339(),
        targets,
        columns: [
            "target",
            "table",
            "key",
            "kind",
            "column",
            "source",
            "target value",
        ]
        .into_iter()
        .map(column)
        .collect(),
        rows,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
