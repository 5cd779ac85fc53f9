//! PostgreSQL as a source and as a target.
//!
//! * [`source`]: logical replication with the `pgoutput` plugin (a
//!   consistent chunked snapshot, then the change stream), or polling for
//!   databases where replication is not allowed.
//! * [`target`]: bulk staged merges with the checkpoint in the same
//!   transaction.
//!
//! Both reach the server through [`connection`] (one set of connect options
//! and session settings) and fail with one [`PgError`], classified into the
//! engine's [`ErrorKind`](syncline_engine::ErrorKind) in one place.
//! [`introspect`] reads the catalog and quotes SQL names; [`types`] is the
//! source's type map and binary decoder.

pub mod connection;
mod error;
pub mod introspect;
pub mod source;
pub mod target;
pub mod types;
mod verify;

pub use connection::{Endpoint, SslMode};
pub use error::PgError;
pub use source::{
    PgState, PgTableConfig, PostgresSource, PostgresSourceConfig, SnapshotState, TableChunks,
    slot_name,
};
pub use target::{PostgresSink, PostgresTargetConfig};
