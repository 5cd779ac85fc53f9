//! Syncline's engine: the change model, pipeline files, the contracts of
//! sources and sinks, and the runtime that moves changes between them with
//! bounded memory and exactly-once checkpoints.
//!
//! The engine knows nothing of any particular system (connectors implement
//! its traits) and nothing of the desktop app or the terminal (both consume
//! the [`status`] stream).

pub mod apply;
pub mod batch;
pub mod columnar;
pub mod config;
pub mod connector;
pub mod encode;
pub mod error;
pub mod model;
pub mod runtime;
pub mod status;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
