//! Searching a pipeline's search index targets (`syncline search`, the
//! studio's search box).

use syncline_engine::{Error, ErrorKind, Result};
pub use syncline_search::query::{Found, Highlight, Hit};

use crate::registry::{Pipeline, TargetConfig};
use syncline_engine::config::TargetSpec as _;

/// Runs `query` (tantivy's syntax) on the index of `target`, returning the
/// best `limit` documents with their highlights.
pub fn search(pipeline: &Pipeline, target: &str, query: &str, limit: usize) -> Result<Found> {
    let searchable = || -> Vec<&str> {
        pipeline
            .spec
            .targets
            .iter()
            .filter(|(_, t)| matches!(t, TargetConfig::Search(_)))
            .map(|(n, _)| n.as_str())
            .collect()
    };
    let Some(config) = pipeline.spec.targets.get(target) else {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "the pipeline has no target named `{target}` (its search index targets: {})",
                list(&searchable())
            ),
        ));
    };
    let TargetConfig::Search(config) = config else {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "target `{target}` is a {} target; only search index targets (`kind = \"search\"`) can be searched (this pipeline's: {})",
                config.kind(),
                list(&searchable())
            ),
        ));
    };
    Ok(syncline_search::query::search(
        config,
        pipeline.base_dir(),
        query,
        limit,
    )?)
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
