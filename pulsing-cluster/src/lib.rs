//! Cluster membership for Pulsing.
//!
//! This crate will implement [`pulsing_core::Membership`]: SWIM failure detection with `foca` 2.x (direct
//! and indirect probes, suspicion, refutation), join through seed addresses with a first push-pull sync,
//! and a cluster-wide registry of public actor names spread by piggybacked gossip and repaired by
//! anti-entropy. The protocol logic takes time and bytes as inputs and returns what to send, so it can be
//! driven by a virtual clock in tests; one small driver task owns the timers and the transport.
//!
//! It does not open sockets itself: packets travel through [`pulsing_core::Transport`].
//!
//! Status: not implemented yet (issue "3/4 Cluster"); the crate builds so the workspace and the facade's
//! `cluster` feature are in place.
#![deny(missing_docs)]

pub use pulsing_core::Membership;
