//! What the desktop studio asks of pipelines, as plain functions over the
//! registry: connector kinds with their form schemas, the bundled sample,
//! checks and discovery of one section of an unfinished pipeline, drafts
//! rendered to TOML, validation, open and save, transform previews, DuckDB
//! browsing and the dead-letter queue. `src-tauri` wraps each in a command
//! of a few lines; the types here are its DTOs (camelCase, with TypeScript
//! bindings). Errors are a [`Failure`]: a contract code and a plain message.
//!
//! One module per part of the studio: [`wizard`] (kinds, the sample, checks,
//! discovery, drafts, open and save), [`preview`] (transform previews),
//! [`data`] (browsing DuckDB files), [`dead_letters`] and [`status`] (the
//! pipeline status as the window receives it), [`verify`] (targets
//! compared with their sources); [`scope`] (the files the
//! commands may touch); [`failure`] is the error every call returns.

mod data;
mod dead_letters;
mod failure;
mod preview;
mod scope;
mod status;
mod verify;
mod wizard;

pub use data::*;
pub use dead_letters::*;
pub use failure::*;
pub use preview::*;
pub use scope::*;
pub use status::*;
pub use verify::*;
pub use wizard::*;

/// Runs blocking work (DuckDB, files) off the async threads.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, Failure> + Send + 'static,
) -> Result<R, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::internal(format!("a worker stopped: {e}")))?
}
