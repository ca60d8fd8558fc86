//! HTTP transport for Pulsing.
//!
//! This crate will implement [`pulsing_core::Transport`] over hyper 1.x: one TCP port per node serving
//! HTTP/1.1 and HTTP/2 with prior knowledge (`POST /actor/{name}`, `POST /cluster/gossip`, `GET /health`,
//! `GET /metrics`, `GET /actors`), and a pooled HTTP/2 client for node-to-node calls. The wire format is
//! specified in `docs/protocol.md`.
//!
//! It does not hold any actor or membership logic: those live in `pulsing-core` and `pulsing-cluster`.
//!
//! Status: not implemented yet (issue "2/4 HTTP transport"); the crate builds so the workspace and the
//! facade's `http` feature are in place.
#![deny(missing_docs)]

pub use pulsing_core::Transport;
