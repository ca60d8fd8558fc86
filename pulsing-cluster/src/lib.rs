//! Cluster membership for Pulsing: SWIM failure detection and a cluster-wide registry of public
//! actors.
//!
//! [`Cluster`] implements [`pulsing_core::Membership`]:
//!
//! - **Failure detection** is SWIM, by [`foca`] 2.x: direct probes, indirect probes through `k`
//!   members, suspicion refuted by a higher incarnation, updates piggybacked on every packet.
//! - **Identity** is address + boot id: a process restarted on the same address is a new member
//!   and replaces the old one everywhere.
//! - **Registry**: each node owns the versioned list of its public actor names. Changes spread as
//!   foca custom broadcasts and are repaired by periodic anti-entropy (digest compare, then pull
//!   and push what differs). A node's entries disappear everywhere when it is declared down or
//!   leaves.
//! - **Join**: [`start`](pulsing_core::Membership::start) with seeds returns after the first
//!   push-pull sync (members and registry) with a seed, so `find` right after a join sees every
//!   actor that existed before it.
//!
//! The logic is free of IO (see `node.rs`): it takes the time and the bytes that arrived and returns
//! packets to send and when to wake up. One small tokio task per node owns the timers and sends the
//! packets through [`pulsing_core::Transport::gossip`]; the `sim` feature drives the same logic for
//! many nodes in one thread with a virtual clock.
//!
//! It does not open sockets (packets travel through the node's transport as
//! `POST /cluster/gossip` bodies), persist anything, or secure the gossip: run it on a trusted
//! network.
//!
//! The packet format is described in the `wire` module: a version byte, a kind byte, a body.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cluster;
mod config;
mod identity;
mod node;
mod registry;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod wire;

pub use cluster::Cluster;
pub use config::ClusterConfig;
pub use pulsing_core::Membership;
