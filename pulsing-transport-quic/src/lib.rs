//! QUIC transport for Pulsing.
//!
//! This crate will implement [`pulsing_core::Transport`] over quinn 0.11: one bidirectional QUIC stream
//! per ask, the same envelope and stream-frame encoding as the HTTP transport (see `docs/protocol.md`),
//! and gossip packets as unreliable datagrams. It is the optional fast path, enabled by the facade's
//! `quic` feature, and is benchmarked side by side with the HTTP transport.
//!
//! It does not hold any actor or membership logic.
//!
//! Status: not implemented yet; the crate builds so the workspace and the `quic` feature are in place.
#![deny(missing_docs)]

pub use pulsing_core::Transport;
