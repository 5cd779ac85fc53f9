//! The new-pipeline wizard's calls: connector kinds with their form
//! schemas, the bundled sample, checks and discovery of one section of an
//! unfinished pipeline, drafts rendered to TOML, validation, open and save,
//! secrets.

use std::path::{Path, PathBuf};

use serde::Serialize;
use syncline_engine::config::{self, ConfigErrors, SourceSpec};
use syncline_engine::connector::{Check, CheckOutcome};
use ts_rs::TS;

use crate::transforms::TransformCheckError;
use crate::{SourceConfig, TargetConfig, build_sink, build_source, secrets};

use super::*;

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
        "mysql" => "MySQL / MariaDB",
        "duckdb" => "DuckDB",
        "redis" => "Redis",
        "search" => "Search index",
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
            FailureCode::Config,
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
            let mut sink = build_sink(
                name,
                &config,
                &draft_name(path, text),
                &base_dir(path),
                None,
            );
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
        Failure::new(FailureCode::Config, format!("{field}{}{help}", e.message))
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
