//! The kind registry: the one place that maps `kind = "..."` in a pipeline
//! file to a connector's config type and implementation. Adding a
//! connector means adding a variant here and nowhere else.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_duckdb::{DuckDbSink, DuckDbTargetConfig};
use syncline_engine::config::{
    self, ConfigErrors, ConnectorSet, KindSchema, LoadedPipeline, SourceSpec, SyncMode, TableDecl,
    TargetSpec, WriteMode, kind_schema,
};
use syncline_engine::connector::{Sink, Source};
use syncline_engine::runtime::{PipelinePlan, SinkPlan, SourcePlan, TableFilter};
use syncline_engine::{Error, ErrorKind, Result};
use syncline_files::{FilesSource, FilesSourceConfig};
use syncline_mysql::{MySqlSource, MySqlSourceConfig};
use syncline_postgres::{PostgresSink, PostgresSource, PostgresSourceConfig, PostgresTargetConfig};
use syncline_redis::{RedisSink, RedisTargetConfig};
use syncline_search::{SearchSink, SearchTargetConfig};

use crate::{secrets, transforms};

/// A source section of a pipeline file, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A folder of CSV, JSON-lines or Parquet files, watched for changes.
    Files(FilesSourceConfig),
    /// A PostgreSQL database, through logical replication.
    Postgres(PostgresSourceConfig),
    /// A MySQL or MariaDB database, through its row-based binary log.
    Mysql(MySqlSourceConfig),
}

/// A target section of a pipeline file, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetConfig {
    /// A DuckDB database file.
    Duckdb(DuckDbTargetConfig),
    /// A PostgreSQL database.
    Postgres(PostgresTargetConfig),
    /// A Redis server: a cache kept in sync by key.
    Redis(RedisTargetConfig),
    /// A full-text search index in a local folder.
    Search(SearchTargetConfig),
}

impl ConnectorSet for SourceConfig {
    fn kinds() -> Vec<KindSchema> {
        vec![
            kind_schema::<FilesSourceConfig>("files"),
            kind_schema::<PostgresSourceConfig>("postgres"),
            kind_schema::<MySqlSourceConfig>("mysql"),
        ]
    }
}

impl ConnectorSet for TargetConfig {
    fn kinds() -> Vec<KindSchema> {
        vec![
            kind_schema::<DuckDbTargetConfig>("duckdb"),
            kind_schema::<PostgresTargetConfig>("postgres"),
            kind_schema::<RedisTargetConfig>("redis"),
            kind_schema::<SearchTargetConfig>("search"),
        ]
    }
}

impl SourceSpec for SourceConfig {
    fn kind(&self) -> &'static str {
        match self {
            SourceConfig::Files(_) => "files",
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::Mysql(_) => "mysql",
        }
    }

    fn tables(&self) -> Vec<TableDecl> {
        match self {
            SourceConfig::Files(c) => c.table_decls(),
            SourceConfig::Postgres(c) => c.table_decls(),
            SourceConfig::Mysql(c) => c.table_decls(),
        }
    }

    fn supported_modes(&self) -> &'static [SyncMode] {
        match self {
            SourceConfig::Files(_) => FilesSourceConfig::MODES,
            SourceConfig::Postgres(_) => PostgresSourceConfig::MODES,
            SourceConfig::Mysql(_) => MySqlSourceConfig::MODES,
        }
    }
}

impl TargetSpec for TargetConfig {
    fn kind(&self) -> &'static str {
        match self {
            TargetConfig::Duckdb(_) => "duckdb",
            TargetConfig::Postgres(_) => "postgres",
            TargetConfig::Redis(_) => "redis",
            TargetConfig::Search(_) => "search",
        }
    }

    fn inputs(&self) -> &[String] {
        match self {
            TargetConfig::Duckdb(c) => &c.inputs,
            TargetConfig::Postgres(c) => &c.inputs,
            TargetConfig::Redis(c) => &c.inputs,
            TargetConfig::Search(c) => &c.inputs,
        }
    }

    fn write_mode(&self) -> WriteMode {
        match self {
            TargetConfig::Duckdb(c) => c.mode,
            TargetConfig::Postgres(c) => c.mode,
            TargetConfig::Redis(c) => c.mode,
            TargetConfig::Search(c) => c.mode,
        }
    }
}

/// A loaded pipeline file.
pub type Pipeline = LoadedPipeline<SourceConfig, TargetConfig>;

/// Reads and validates a pipeline file.
pub fn load(path: &Path) -> Result<Pipeline, ConfigErrors> {
    secrets::install();
    config::load(path)
}

/// Validates pipeline text as if read from `path`.
pub fn parse(path: &Path, text: String) -> Result<Pipeline, ConfigErrors> {
    secrets::install();
    config::parse(path, text)
}

/// Validates a pipeline being written as if read from `path`: like
/// [`parse`], but it may have no targets yet.
pub fn parse_draft(path: &Path, text: String) -> Result<Pipeline, ConfigErrors> {
    secrets::install();
    config::parse_draft(path, text)
}

/// The JSON Schema of pipeline files.
pub fn schema() -> serde_json::Value {
    config::pipeline_schema::<SourceConfig, TargetConfig>()
}

/// Where a pipeline keeps its local state (identity, source manifests, last
/// status):
/// `.syncline/<name>/` beside the pipeline file.
pub fn state_dir(pipeline: &Pipeline) -> PathBuf {
    pipeline
        .base_dir()
        .join(".syncline")
        .join(&pipeline.spec.name)
}

/// The file in a pipeline's state folder that holds its identity.
const IDENTITY_FILE: &str = "id";

/// The identity of the pipeline whose state folder is `state`, if it has
/// one: 12 hex digits, random, made at its first run. Replication slots
/// carry it in their names, so pipelines named alike never share one.
pub(crate) fn identity(state: &Path) -> Result<Option<String>> {
    let path = state.join(IDENTITY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(
                Error::new(ErrorKind::Io, format!("reading {}", path.display())).with_source(e),
            );
        }
    };
    let id = text.trim();
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(id.to_ascii_lowercase()))
    } else {
        Err(Error::new(
            ErrorKind::State,
            format!(
                "{} does not hold a pipeline identity (12 hex digits); restore it, or run `syncline drop` and start over",
                path.display()
            ),
        ))
    }
}

/// The identity of the pipeline whose state folder is `state`, made (and
/// kept there) if it has none yet.
pub(crate) fn ensure_identity(state: &Path) -> Result<String> {
    if let Some(id) = identity(state)? {
        return Ok(id);
    }
    let id = format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
    let path = state.join(IDENTITY_FILE);
    std::fs::write(&path, format!("{id}\n")).map_err(|e| {
        Error::new(ErrorKind::Io, format!("writing {}", path.display())).with_source(e)
    })?;
    Ok(id)
}

/// Builds one source connector.
pub fn source(pipeline: &Pipeline, name: &str) -> Result<Box<dyn Source>> {
    let config = pipeline
        .spec
        .sources
        .get(name)
        .ok_or_else(|| Error::new(ErrorKind::Config, format!("no source named `{name}`")))?;
    build_source(
        name,
        config,
        &pipeline.spec.name,
        pipeline.base_dir(),
        &state_dir(pipeline),
    )
}

/// Builds a source connector from its section: `base_dir` is the pipeline
/// file's folder, `state` the pipeline's state folder.
pub(crate) fn build_source(
    name: &str,
    config: &SourceConfig,
    pipeline: &str,
    base_dir: &Path,
    state: &Path,
) -> Result<Box<dyn Source>> {
    Ok(match config {
        SourceConfig::Files(c) => Box::new(FilesSource::new(
            name,
            c,
            base_dir,
            &state.join(format!("files-{name}")),
        )?),
        SourceConfig::Postgres(c) => Box::new(PostgresSource::new(
            name,
            pipeline,
            identity(state)?.as_deref(),
            c,
        )),
        // The replica id the binary log is read as comes from the
        // pipeline's identity where it has one, so two pipelines of one
        // name never read as one replica.
        SourceConfig::Mysql(c) => {
            let key = match identity(state)? {
                Some(id) => format!("{pipeline}\0{id}"),
                None => pipeline.to_owned(),
            };
            Box::new(MySqlSource::new(name, &key, c))
        }
    })
}

/// Builds one sink connector.
pub fn sink(pipeline: &Pipeline, name: &str) -> Result<Box<dyn Sink>> {
    let config = pipeline
        .spec
        .targets
        .get(name)
        .ok_or_else(|| Error::new(ErrorKind::Config, format!("no target named `{name}`")))?;
    Ok(build_sink(
        name,
        config,
        &pipeline.spec.name,
        pipeline.base_dir(),
        Some(&state_dir(pipeline)),
    ))
}

/// Builds a sink connector from its section `name`: `base_dir` is the
/// pipeline file's folder, `state` the pipeline's state folder (`None`
/// where nothing runs, such as a connection test).
pub(crate) fn build_sink(
    name: &str,
    config: &TargetConfig,
    pipeline: &str,
    base_dir: &Path,
    state: Option<&Path>,
) -> Box<dyn Sink> {
    match config {
        TargetConfig::Duckdb(c) => Box::new(DuckDbSink::new(c.clone(), base_dir, pipeline)),
        TargetConfig::Postgres(c) => Box::new(PostgresSink::new(c.clone(), pipeline)),
        TargetConfig::Redis(c) => {
            let sink = RedisSink::new(c.clone(), pipeline);
            // What it committed is remembered beside the pipeline, so a
            // Redis that comes back with less is found out.
            match state {
                Some(state) => Box::new(sink.remembering(state.join(format!("redis-{name}.json")))),
                None => Box::new(sink),
            }
        }
        TargetConfig::Search(c) => Box::new(SearchSink::new(c.clone(), base_dir, pipeline)),
    }
}

/// Builds every connector of a pipeline, ready to run. Lookup tables the
/// transforms join are read here.
pub async fn plan(pipeline: &Pipeline) -> Result<PipelinePlan> {
    let transform = if pipeline.spec.transforms.is_empty() {
        None
    } else {
        let transforms = transforms::build(pipeline).await?;
        Some(Box::new(transforms) as Box<dyn syncline_engine::connector::Transform>)
    };
    let mut sources = Vec::new();
    for name in pipeline.spec.sources.keys() {
        sources.push(SourcePlan {
            name: name.clone(),
            source: source(pipeline, name)?,
        });
    }
    let mut sinks = Vec::new();
    for (name, target) in &pipeline.spec.targets {
        sinks.push(SinkPlan {
            name: name.clone(),
            sink: sink(pipeline, name)?,
            filter: filter(pipeline, target.inputs()),
        });
    }
    Ok(PipelinePlan {
        name: pipeline.spec.name.clone(),
        sources,
        transform,
        sinks,
        max_dead_letters: pipeline.spec.max_dead_letters,
        earlier_rows: state_dir(pipeline).join(DROPPED).exists(),
    })
}

/// A file in a pipeline's state folder saying that the pipeline was
/// dropped: its targets may keep rows that no checkpoint covers, so a run
/// that finds no checkpoint restates (empties and copies every table again)
/// rather than copying onto them.
pub const DROPPED: &str = "dropped";

/// What a target with `inputs` receives: sources, tables, and transform
/// outputs (which travel in their input source's batches).
pub(crate) fn filter(pipeline: &Pipeline, inputs: &[String]) -> TableFilter {
    let mut filter = TableFilter::from_inputs(inputs.iter().map(String::as_str));
    for input in inputs {
        if let Some(t) = pipeline.spec.transforms.get(input)
            && let Some((source, _)) = t.input.split_once('.')
        {
            filter = filter.through(source);
        }
    }
    filter
}
