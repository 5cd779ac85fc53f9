//! The application layer the CLI and the desktop shell share: the kind
//! registry ([`registry`]: `kind = "..."` to connector), running pipelines
//! ([`lifecycle`]), the studio's calls and their DTOs ([`desktop`]), dead
//! letters ([`dlq`]), searching search indexes ([`search`]), transforms and previews ([`transforms`]) and secrets
//! ([`secrets`]). It depends on every connector; nothing depends on it but
//! the two front ends.

pub mod desktop;
pub mod dlq;
pub mod lifecycle;
pub mod registry;
pub mod search;
pub mod secrets;
pub mod transforms;
pub mod verify;

pub use registry::*;
