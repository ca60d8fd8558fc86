//! Pulsing facade.
pub use pulsing_core;
