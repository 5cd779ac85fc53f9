//! A pipeline's SQL transforms: building them for a run, checking them
//! against the sources' real tables, and previewing them on sampled rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use syncline_engine::config::ConfigErrors;
use syncline_engine::model::{TableId, TableSchema};
use syncline_engine::{Error, ErrorKind, Result};
use syncline_transform::preview::{Preview, PreviewInput, table_id};
use syncline_transform::{TransformDef, TransformError, Transforms, locate_error};

use crate::{Pipeline, source};

/// The transforms declared in the file.
pub fn defs(pipeline: &Pipeline) -> Result<Vec<TransformDef>> {
    pipeline
        .spec
        .transforms
        .iter()
        .map(|(name, t)| {
            let parse = |s: &str| {
                table_id(s).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        format!("transform `{name}`: `{s}` is not `source.table`"),
                    )
                })
            };
            Ok(TransformDef {
                name: name.clone(),
                input: parse(&t.input)?,
                sql: t.sql.clone(),
                lookups: t.lookups.iter().map(|l| parse(l)).collect::<Result<_>>()?,
            })
        })
        .collect()
}

/// Reads every row of the lookup tables `ids`.
async fn read_lookups(
    pipeline: &Pipeline,
    ids: &[TableId],
) -> Result<Vec<(Arc<TableSchema>, Vec<syncline_engine::model::Row>)>> {
    let mut out = Vec::new();
    for id in ids {
        let mut s = source(pipeline, &id.origin)?;
        out.push(s.sample(&id.name, None, 0).await?);
    }
    Ok(out)
}

/// The transforms of a pipeline, ready to run, lookups loaded.
pub async fn build(pipeline: &Pipeline) -> Result<Transforms> {
    let mut transforms =
        Transforms::new(defs(pipeline)?, pipeline.base_dir()).map_err(Error::from)?;
    let lookups = read_lookups(pipeline, &transforms.lookup_tables()).await?;
    for (schema, rows) in &lookups {
        transforms
            .load_lookup(schema, rows)
            .map_err(|e| Error::new(ErrorKind::Config, e.to_string()))?;
    }
    Ok(transforms)
}

/// A transform's output as checked against its source.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedTransform {
    /// Transform name.
    pub name: String,
    /// The output table the targets will get.
    pub output: Arc<TableSchema>,
}

/// Why transforms could not be checked.
#[derive(Debug)]
pub enum TransformCheckError {
    /// A transform is wrong: reported at its place in the file.
    Invalid(Box<ConfigErrors>),
    /// A source could not be read to check against.
    Source(Error),
}

/// Checks every transform against the real tables of its source: the SQL
/// parses and binds, the output keeps the key columns, every output type
/// maps onto targets. Returns the output tables.
pub async fn check(
    pipeline: &Pipeline,
) -> std::result::Result<Vec<CheckedTransform>, TransformCheckError> {
    if pipeline.spec.transforms.is_empty() {
        return Ok(Vec::new());
    }
    let defs = defs(pipeline).map_err(TransformCheckError::Source)?;
    let mut tables: BTreeMap<String, Vec<Arc<TableSchema>>> = BTreeMap::new();
    for def in &defs {
        if !tables.contains_key(&def.input.origin) {
            let mut s = source(pipeline, &def.input.origin).map_err(TransformCheckError::Source)?;
            let found = s.discover().await.map_err(TransformCheckError::Source)?;
            tables.insert(def.input.origin.clone(), found);
        }
    }
    let mut transforms = build(pipeline).await.map_err(TransformCheckError::Source)?;
    let all: Vec<Arc<TableSchema>> = tables.into_values().flatten().collect();
    match transforms.derive_all(&all) {
        Ok(outputs) => Ok(defs
            .iter()
            .zip(outputs)
            .map(|(d, output)| CheckedTransform {
                name: d.name.clone(),
                output,
            })
            .collect()),
        Err((name, e)) => Err(TransformCheckError::Invalid(Box::new(problem(
            pipeline, &name, &e,
        )))),
    }
}

/// A transform error placed in the file: at the SQL position when the SQL
/// is at fault, at the `sql` value otherwise.
pub fn problem(pipeline: &Pipeline, name: &str, error: &TransformError) -> ConfigErrors {
    let sql = pipeline
        .spec
        .transforms
        .get(name)
        .map(|t| t.sql.as_str())
        .unwrap_or_default();
    let located = locate_error(error, sql);
    let pointer = format!(
        "/transforms/{}/sql",
        name.replace('~', "~0").replace('/', "~1")
    );
    let (message, help) = match (error, &located) {
        (TransformError::Invalid { message, help }, _) => (message.clone(), Some(help.clone())),
        (TransformError::Statement { message, help, .. }, _) => {
            (format!("transform `{name}`: {message}"), Some(help.clone()))
        }
        (_, Some(e)) => (
            format!("transform `{name}`: {}", e.message),
            Some("fix the SQL; `syncline preview` runs it on sample rows".to_owned()),
        ),
        (other, None) => (format!("transform `{name}`: {other}"), None),
    };
    pipeline.problem(
        &pointer,
        &format!("transforms.{name}.sql"),
        located.and_then(|e| e.offset),
        message,
        help,
    )
}

/// How much to load for a preview.
#[derive(Debug, Clone, Copy)]
pub struct SampleOptions {
    /// Rows to sample (default 10,000).
    pub limit: usize,
    /// Which sample: another seed gives other rows.
    pub seed: u64,
    /// Recent changes to load from the change log, where there is one.
    pub changes: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions {
            limit: 10_000,
            seed: 0,
            changes: 100,
        }
    }
}

/// Loads a preview of input table `input` (`source.table`), with the
/// lookups `lookups`, for transform `name`. Nothing is written anywhere.
pub async fn preview_input(
    pipeline: &Pipeline,
    name: &str,
    input: &str,
    lookups: &[String],
    options: SampleOptions,
) -> Result<Preview> {
    let id = table_id(input).ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!("`{input}` is not `source.table`"),
        )
    })?;
    let mut s = source(pipeline, &id.origin)?;
    let (table, rows) = s
        .sample(&id.name, Some(options.limit), options.seed)
        .await?;
    let changes = if options.changes > 0 {
        s.recent_changes(&id.name, options.changes).await?
    } else {
        Vec::new()
    };
    let lookup_ids: Vec<TableId> = lookups.iter().filter_map(|l| table_id(l)).collect();
    let lookups = read_lookups(pipeline, &lookup_ids).await?;
    let base = pipeline.base_dir().to_path_buf();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        Preview::load(
            &name,
            PreviewInput {
                table,
                rows,
                changes,
                lookups,
            },
            &base,
        )
    })
    .await
    .map_err(|e| Error::internal(format!("preview task failed: {e}")))?
    .map_err(Error::from)
}

/// Loads a preview of transform `name` as declared in the file.
pub async fn preview(pipeline: &Pipeline, name: &str, options: SampleOptions) -> Result<Preview> {
    let t = pipeline.spec.transforms.get(name).ok_or_else(|| {
        let known: Vec<&str> = pipeline
            .spec
            .transforms
            .keys()
            .map(String::as_str)
            .collect();
        Error::new(
            ErrorKind::Config,
            format!(
                "the pipeline has no transform `{name}` (it has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        )
    })?;
    preview_input(pipeline, name, &t.input, &t.lookups, options).await
}
