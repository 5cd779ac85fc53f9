//! A pipeline's dead-letter queue: the rows its targets keep because a
//! source could not read them, a transform failed on them, or a value did
//! not fit the target's column. Each target keeps its own (written in the
//! same transaction as the data), so listing, replaying and discarding go
//! through every target of the pipeline.
//!
//! Replay runs each kept change through the pipeline's transforms as they
//! are *now* (after the user fixed the SQL) and applies what comes out,
//! oldest first, removing exactly the rows that succeed in the same target
//! transaction. In an upsert target a kept row with a later kept row of the
//! same key is superseded: only the latest version is applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use syncline_engine::batch::{Batch, Position};
use syncline_engine::config::{TargetSpec, WriteMode};
use syncline_engine::connector::KeptRow;
use syncline_engine::model::{TableId, TableSchema};
use syncline_engine::{Error, ErrorKind, Result};

use crate::{Pipeline, filter, sink, source, transforms};

/// One target's kept rows.
#[derive(Debug, Clone, Serialize)]
pub struct TargetDeadLetters {
    /// Target name.
    pub target: String,
    /// Kept rows, oldest first.
    pub rows: Vec<KeptRow>,
}

fn targets<'a>(pipeline: &'a Pipeline, only: Option<&str>) -> Result<Vec<&'a String>> {
    if let Some(name) = only
        && !pipeline.spec.targets.contains_key(name)
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!("the pipeline has no target `{name}`"),
        ));
    }
    Ok(pipeline
        .spec
        .targets
        .keys()
        .filter(|k| only.is_none_or(|o| o == k.as_str()))
        .collect())
}

/// Every target's kept rows.
pub async fn list(pipeline: &Pipeline, target: Option<&str>) -> Result<Vec<TargetDeadLetters>> {
    let mut out = Vec::new();
    for name in targets(pipeline, target)? {
        let mut s = sink(pipeline, name)?;
        let rows = s.dead_letters().await?;
        s.close().await?;
        out.push(TargetDeadLetters {
            target: name.clone(),
            rows,
        });
    }
    Ok(out)
}

/// Removes kept rows (`ids`, or all when `None`); returns how many, per
/// target.
pub async fn discard(
    pipeline: &Pipeline,
    target: Option<&str>,
    ids: Option<&[u64]>,
) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for name in targets(pipeline, target)? {
        let mut s = sink(pipeline, name)?;
        let chosen: Vec<u64> = match ids {
            Some(ids) => ids.to_vec(),
            None => s.dead_letters().await?.iter().map(|r| r.id).collect(),
        };
        let n = s.discard(&chosen).await?;
        s.close().await?;
        out.push((name.clone(), n));
    }
    Ok(out)
}

/// What a replay did in one target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Target name.
    pub target: String,
    /// Rows applied and removed from the queue.
    pub replayed: Vec<u64>,
    /// Rows removed because a later kept row of the same key was applied
    /// in their place.
    pub superseded: Vec<u64>,
    /// Rows that still fail, with why; they stay.
    pub failed: Vec<(u64, String)>,
    /// Rows that cannot be replayed (a record the source could not read:
    /// fix it at its origin); they stay.
    pub not_replayable: Vec<u64>,
}

/// Replays kept rows (`ids`, or all when `None`) through the current
/// transforms into their targets.
pub async fn replay(
    pipeline: &Pipeline,
    target: Option<&str>,
    ids: Option<&[u64]>,
) -> Result<Vec<ReplayReport>> {
    let names = targets(pipeline, target)?;
    // The tables as they are now: every source's, and the transforms'.
    let mut tables: Vec<Arc<TableSchema>> = Vec::new();
    for name in pipeline.spec.sources.keys() {
        let mut s = source(pipeline, name)?;
        tables.extend(s.discover().await?);
    }
    let mut transforms = if pipeline.spec.transforms.is_empty() {
        None
    } else {
        let mut t = transforms::build(pipeline).await?;
        let derived = t.derive_all(&tables).map_err(|(name, e)| {
            Error::new(ErrorKind::Config, format!("transform `{name}`: {e}"))
        })?;
        tables.extend(derived);
        Some(t)
    };
    let by_id: HashMap<TableId, Arc<TableSchema>> =
        tables.iter().map(|t| (t.id.clone(), t.clone())).collect();

    let mut reports = Vec::new();
    for name in names {
        let config = &pipeline.spec.targets[name];
        let mut s = sink(pipeline, name)?;
        let all = s.dead_letters().await?;
        let wanted: Option<HashSet<u64>> = ids.map(|i| i.iter().copied().collect());
        let mut report = ReplayReport {
            target: name.clone(),
            ..ReplayReport::default()
        };
        // In upsert mode only the latest kept version of a key matters.
        let mut latest: BTreeMap<(String, String), u64> = BTreeMap::new();
        if config.write_mode() == WriteMode::Upsert {
            for row in &all {
                if let Some(k) = &row.kept {
                    latest.insert((row.table.clone(), k.key.clone()), row.id);
                }
            }
        }
        let mut batches = Vec::new();
        for row in all
            .iter()
            .filter(|r| wanted.as_ref().is_none_or(|w| w.contains(&r.id)))
        {
            let Some(kept) = &row.kept else {
                report.not_replayable.push(row.id);
                continue;
            };
            if latest
                .get(&(row.table.clone(), kept.key.clone()))
                .is_some_and(|&l| l != row.id)
            {
                report.superseded.push(row.id);
                continue;
            }
            let Some(schema) = by_id.get(&kept.table) else {
                report.failed.push((
                    row.id,
                    format!("table `{}` is no longer in the pipeline", kept.table),
                ));
                continue;
            };
            let outcome = match (&kept.transform, transforms.as_mut()) {
                (Some(t), Some(transforms)) => transforms
                    .replay(t, schema, kept)
                    .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?,
                (Some(t), None) => Err(format!("the pipeline has no transform `{t}` any more")),
                (None, _) => {
                    let change = kept.to_change(schema);
                    let misfit = change.after.as_ref().and_then(|after| {
                        schema
                            .columns
                            .iter()
                            .zip(after)
                            .find(|(c, v)| !c.data_type.accepts(v))
                            .map(|(c, _)| {
                                format!(
                                    "a value still does not fit column `{}` ({})",
                                    c.name, c.data_type
                                )
                            })
                    });
                    match misfit {
                        Some(reason) => Err(reason),
                        None => Ok(vec![change]),
                    }
                }
            };
            match outcome {
                Ok(changes) => {
                    report.replayed.push(row.id);
                    let position = Position {
                        seq: row.seq,
                        state: serde_json::Value::Null,
                    };
                    batches.push(Batch::stream(position, changes));
                }
                Err(reason) => report.failed.push((row.id, reason)),
            }
        }
        if !report.replayed.is_empty() || !report.superseded.is_empty() {
            let accepted = filter(pipeline, config.inputs());
            let mine: Vec<Arc<TableSchema>> = tables
                .iter()
                .filter(|t| accepted.accepts(&t.id))
                .cloned()
                .collect();
            s.open(&mine).await?;
            let resolved: Vec<u64> = report
                .replayed
                .iter()
                .chain(&report.superseded)
                .copied()
                .collect();
            s.replay(batches, resolved).await?;
        }
        s.close().await?;
        reports.push(report);
    }
    Ok(reports)
}
