//! `syncline verify`: every table a target takes as it is, compared with
//! its source ([`syncline_engine::verify`]).

use serde::Serialize;
use std::collections::HashSet;
use syncline_engine::config::{TargetSpec, WriteMode};
use syncline_engine::connector::Source;

use syncline_engine::model::{KeptChange, TableId};
use syncline_engine::verify::{self, Options, TableCheck};
use syncline_engine::{Error, ErrorKind, Result};

use crate::registry::{self, Pipeline, TargetConfig};

/// What verify found for one table in one target.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// The target.
    pub target: String,
    /// The source.
    pub source: String,
    /// The table.
    pub table: String,
    /// What was found.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The outcome for one table in one target.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Compared: see the counts and differences.
    Compared {
        /// What the comparison found.
        #[serde(flatten)]
        check: TableCheck,
        /// Dead letters this target keeps for the table: rows it was
        /// meant to hold and refused, which count as missing or changed.
        dead_letters: u64,
    },
    /// Not compared, and why (a transform's output, an append target).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The comparison failed.
    Failed {
        /// The error.
        error: String,
    },
}

/// Everything verify found, table by table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// One entry per target and table.
    pub tables: Vec<TableReport>,
}

impl Report {
    /// Whether every compared table is equal in every target.
    pub fn in_sync(&self) -> bool {
        self.tables.iter().all(|t| match &t.outcome {
            Outcome::Compared { check, .. } => check.in_sync(),
            _ => true,
        })
    }

    /// Whether some comparison failed.
    pub fn failed(&self) -> bool {
        self.tables
            .iter()
            .any(|t| matches!(t.outcome, Outcome::Failed { .. }))
    }
}

/// Compares every table of `pipeline`'s sources with each target that
/// takes it (only `target` and `table` when given); `progress` hears of
/// each table before it is read.
pub async fn verify(
    pipeline: &Pipeline,
    target: Option<&str>,
    table: Option<&str>,
    options: &Options,
    mut progress: impl FnMut(&str, &str, &str),
) -> Result<Report> {
    if let Some(t) = target
        && !pipeline.spec.targets.contains_key(t)
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!("the pipeline has no target named `{t}`"),
        ));
    }
    let targets: Vec<(String, &TargetConfig)> = pipeline
        .spec
        .targets
        .iter()
        .filter(|(name, _)| target.is_none_or(|t| t == name.as_str()))
        .map(|(name, config)| (name.clone(), config))
        .collect();
    let mut report = Report::default();
    let mut seen_table = false;
    for (target_name, config) in &targets {
        for input in config.inputs() {
            if pipeline.spec.transforms.contains_key(input) && table.is_none_or(|t| t == input) {
                seen_table |= table.is_some();
                report.tables.push(TableReport {
                    target: target_name.clone(),
                    source: input.clone(),
                    table: input.clone(),
                    outcome: Outcome::Skipped {
                        reason: format!(
                            "the output of transform `{input}`: verify compares the tables a target takes from a source as they are"
                        ),
                    },
                });
            }
        }
    }
    for source_name in pipeline.spec.sources.keys() {
        let takers: Vec<&(String, &TargetConfig)> = targets
            .iter()
            .filter(|(_, c)| registry::filter(pipeline, c.inputs()).accepts_source(source_name))
            .collect();
        if takers.is_empty() {
            continue;
        }
        // A source that cannot be read fails its tables, not the report.
        let opened = match registry::source(pipeline, source_name) {
            Ok(mut source) => match source.discover().await {
                Ok(schemas) => Ok((source, schemas)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (mut source, schemas) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                seen_table |= table.is_some();
                for (target_name, _) in &takers {
                    report.tables.push(TableReport {
                        target: target_name.clone(),
                        source: source_name.clone(),
                        table: table.unwrap_or("*").to_owned(),
                        outcome: Outcome::Failed { error: e.chain() },
                    });
                }
                continue;
            }
        };
        for schema in schemas {
            let name = &schema.id.name;
            if table.is_some_and(|t| t != name) {
                continue;
            }
            seen_table = true;
            let id = TableId {
                origin: source_name.clone(),
                name: name.clone(),
            };
            for (target_name, config) in takers.iter().copied() {
                if !registry::filter(pipeline, config.inputs()).accepts(&id) {
                    continue;
                }
                let entry = |outcome| TableReport {
                    target: target_name.clone(),
                    source: source_name.clone(),
                    table: name.clone(),
                    outcome,
                };
                if config.write_mode() != WriteMode::Upsert {
                    report.tables.push(entry(Outcome::Skipped {
                        reason: format!(
                            "the target keeps every change ({} mode), not the source's rows",
                            config.write_mode().as_str()
                        ),
                    }));
                    continue;
                }
                progress(target_name, source_name, name);
                let outcome =
                    match compare(pipeline, &mut *source, target_name, name, options).await {
                        Ok(outcome) => outcome,
                        Err(e) => Outcome::Failed { error: e.chain() },
                    };
                report.tables.push(entry(outcome));
            }
        }
    }
    if let Some(t) = table
        && !seen_table
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!("no source of the pipeline has a table `{t}`"),
        ));
    }
    Ok(report)
}

async fn compare(
    pipeline: &Pipeline,
    source: &mut dyn Source,
    target: &str,
    table: &str,
    options: &Options,
) -> Result<Outcome> {
    let (schema, mut from) = source.reader(table).await?;
    let mut sink = registry::sink(pipeline, target)?;
    let mut to = sink.reader(&schema).await?;
    let check = verify::compare(&schema, from.as_mut(), to.as_mut(), options).await?;
    let dead_letters = if check.in_sync() {
        0
    } else {
        sink.dead_letters()
            .await
            .map(|kept| {
                kept.iter()
                    .filter(|k| k.source == schema.id.origin && k.table == table)
                    .count() as u64
            })
            .unwrap_or(0)
    };
    Ok(Outcome::Compared {
        check,
        dead_letters,
    })
}

impl Repaired {
    /// In words: `12 rows written as the source holds them, 1 key deleted`.
    pub fn summary(&self) -> String {
        let n = |count: u64, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        let mut out = format!(
            "{} written as the source holds them, {} deleted",
            n(self.upserted, "row", "rows"),
            n(self.deleted, "key", "keys")
        );
        if self.resolved > 0 {
            out.push_str(&format!(
                ", {} of those keys resolved",
                n(self.resolved, "dead letter", "dead letters")
            ));
        }
        if self.unlisted > 0 {
            out.push_str(&format!(
                "; {} not listed (repair again)",
                n(self.unlisted, "more difference", "more differences")
            ));
        }
        if let Some(e) = &self.error {
            out = format!("FAILED, nothing written: {e}");
        }
        out
    }
}

/// What a repair wrote into one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Repaired {
    /// The target.
    pub target: String,
    /// Rows written as the source holds them now (missing and changed).
    pub upserted: u64,
    /// Keys removed (the source no longer has them).
    pub deleted: u64,
    /// Differences past the listed ones, not repaired (verify again).
    pub unlisted: u64,
    /// Dead letters of the repaired keys, resolved by the repair.
    pub resolved: u64,
    /// Why this target could not be repaired (the others were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Writes the source's current rows for every listed difference of
/// `report` into its target (a key the source no longer has is deleted),
/// through the target's own write path outside the source's order (as a
/// dead-letter replay is): checkpoints do not move. Run it with the
/// pipeline stopped, or its changes may race the repair.
pub async fn repair(pipeline: &Pipeline, report: &Report) -> Result<Vec<Repaired>> {
    use std::collections::BTreeMap;
    use syncline_engine::batch::{Batch, Position};
    use syncline_engine::model::{Change, Op, Value};

    // Per target: the batches, what they do, and the (source, table, key)
    // of every repaired row, whose dead letters the repair resolves.
    type Work = (Vec<Batch>, Repaired, HashSet<(String, String, String)>);
    let mut work: BTreeMap<String, Work> = BTreeMap::new();
    for t in &report.tables {
        let Outcome::Compared { check, .. } = &t.outcome else {
            continue;
        };
        if check.in_sync() {
            continue;
        }
        let mut source = registry::source(pipeline, &t.source)?;
        let (schema, mut reader) = source.reader(&t.table).await?;
        let entry = work.entry(t.target.clone()).or_insert_with(|| {
            (
                Vec::new(),
                Repaired {
                    target: t.target.clone(),
                    ..Repaired::default()
                },
                HashSet::new(),
            )
        });
        entry.1.unlisted += check.unlisted;
        let mut changes = Vec::new();
        for chunk in check.differences.chunks(500) {
            let keys: Vec<Vec<Value>> = chunk.iter().map(|d| d.key_values().to_vec()).collect();
            let now: std::collections::HashMap<String, syncline_engine::model::Row> = reader
                .rows(&keys)
                .await?
                .into_iter()
                .map(|r| {
                    let k: Vec<Value> = schema.key.iter().map(|&i| r[i].clone()).collect();
                    (verify::key_id(&schema, &k), r)
                })
                .collect();
            for key in keys {
                let refs: Vec<&Value> = key.iter().collect();
                entry.2.insert((
                    t.source.clone(),
                    t.table.clone(),
                    KeptChange::key_text(&refs),
                ));
                match now.get(&verify::key_id(&schema, &key)) {
                    Some(row) => {
                        entry.1.upserted += 1;
                        changes.push(Change {
                            op: Op::Update,
                            table: schema.clone(),
                            before: Some(row.clone()),
                            after: Some(row.clone()),
                        });
                    }
                    None => {
                        entry.1.deleted += 1;
                        let mut before = vec![Value::Null; schema.columns.len()];
                        for (&i, v) in schema.key.iter().zip(key) {
                            before[i] = v;
                        }
                        changes.push(Change {
                            op: Op::Delete,
                            table: schema.clone(),
                            before: Some(before),
                            after: None,
                        });
                    }
                }
            }
        }
        let position = Position {
            seq: 0,
            state: serde_json::Value::Null,
        };
        entry.0.push(Batch::stream(position, changes));
    }
    // Each target on its own: one that fails says so, the others are
    // repaired all the same.
    let mut out = Vec::new();
    for (target, (batches, mut repaired, keys)) in work {
        match write_repair(pipeline, &target, batches, &keys).await {
            Ok(resolved) => repaired.resolved = resolved,
            Err(e) => repaired.error = Some(e.chain()),
        }
        out.push(repaired);
    }
    Ok(out)
}

/// Writes one target's repair batches in one replay, resolving the dead
/// letters kept for the repaired keys; returns how many it resolved.
async fn write_repair(
    pipeline: &Pipeline,
    target: &str,
    batches: Vec<syncline_engine::batch::Batch>,
    keys: &HashSet<(String, String, String)>,
) -> Result<u64> {
    let config = &pipeline.spec.targets[target];
    let accepted = registry::filter(pipeline, config.inputs());
    let mut tables = Vec::new();
    for name in pipeline.spec.sources.keys() {
        if !accepted.accepts_source(name) {
            continue;
        }
        let mut s = registry::source(pipeline, name)?;
        tables.extend(
            s.discover()
                .await?
                .into_iter()
                .filter(|t| accepted.accepts(&t.id)),
        );
    }
    let mut sink = registry::sink(pipeline, target)?;
    let resolved: Vec<u64> = sink
        .dead_letters()
        .await?
        .into_iter()
        .filter(|k| {
            k.kept
                .as_ref()
                .is_some_and(|c| keys.contains(&(k.source.clone(), k.table.clone(), c.key.clone())))
        })
        .map(|k| k.id)
        .collect();
    sink.open(&tables).await?;
    sink.replay(batches, resolved.clone()).await?;
    sink.close().await?;
    Ok(resolved.len() as u64)
}
