//! The acceptance kit: what every connector must do, checked against its
//! real service. A connector is done when it passes.
//!
//! * [`sink`]: every target, through the [`Sink`](syncline_engine::connector::Sink)
//!   trait: [`sink_acceptance!`].
//! * [`source`]: every source, through the
//!   [`Source`](syncline_engine::connector::Source) trait:
//!   [`source_acceptance!`].
//!
//! Each scenario gets a fresh database, schema or folder of its own, so
//! scenarios run in parallel and leave nothing behind.

pub mod fixtures;
mod model;
pub mod sink;
pub mod source;
pub mod types;
mod unchanged;

pub use sink::{Harness, Target, TextRow, batch, items};
pub use source::{Origin, SourceHarness, Write};
pub use types::TypeCase;
