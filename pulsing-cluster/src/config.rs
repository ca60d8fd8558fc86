//! [`ClusterConfig`]: the timing of failure detection, dissemination, anti-entropy and join.

use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

/// Settings of a [`Cluster`](crate::Cluster). The defaults are tuned for a LAN (and loopback):
///
/// | setting | default | why |
/// |---|---|---|
/// | [`probe_period`](Self::probe_period) | 500 ms | each member probes one other per period; a dead node is first probed within about one period in small clusters |
/// | [`probe_timeout`](Self::probe_timeout) | 250 ms | wait for a direct ack before asking `indirect_probes` others; an ack (direct or indirect) counts until the next period |
/// | [`indirect_probes`](Self::indirect_probes) | 3 | SWIM's `k` |
/// | [`suspicion_timeout`](Self::suspicion_timeout) | 3 s | a suspect that does not refute in time is declared down; scaled by `log10(members)` above 10 members |
/// | [`gossip_interval`](Self::gossip_interval) / [`gossip_fanout`](Self::gossip_fanout) | 200 ms / 3 | pending updates are pushed this often to this many members |
/// | [`max_transmissions`](Self::max_transmissions) | 10 | how often each update is piggybacked; `6 * log10(members)` if more |
/// | [`anti_entropy_interval`](Self::anti_entropy_interval) | 2 s | push-pull of registry digests with one random member |
/// | [`join_timeout`](Self::join_timeout) | 5 s | `start` with seeds fails after this if no seed answered |
/// | [`join_retry`](Self::join_retry) | 500 ms | seeds that did not answer are asked again this often |
/// | [`gossip_timeout`](Self::gossip_timeout) | 1 s | bound on each packet sent through the transport |
/// | [`announce_interval`](Self::announce_interval) | 10 s | ask a random member for its view (heals missed joins) |
/// | [`announce_down_interval`](Self::announce_down_interval) | 5 s | knock on down members' addresses (heals partitions, finds restarted seeds) |
/// | [`remove_down_after`](Self::remove_down_after) | 10 min | how long a down member is remembered |
///
/// **Failure detection bound.** A node killed with `kill -9` is probed within about one probe
/// period, found silent at the next period, and declared down `suspicion_timeout` later: about
/// 0.5 + 0.5 + 3 = 4 s, under 5 s on loopback for clusters up to 10 nodes (larger clusters wait
/// `log10(n)` times longer before declaring, so that refutations reach everyone first; the
/// `cluster_sim` example measures the figures). Its actors disappear from `lookup` at the same
/// moment.
///
/// **Busy nodes.** Probes are answered by the task that serves `POST /cluster/gossip`, in the
/// body of the same request; a node whose tokio workers are busy answers late, not never. It is
/// only suspected after missing a whole probe period, and it refutes the suspicion (a higher
/// incarnation) as soon as it handles any packet, so a node that gets to run at least once every
/// ~3 s is never declared down. A handler that blocks every worker thread for longer than that is
/// indistinguishable from a dead node.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// How often each member probes another one.
    pub probe_period: Duration,
    /// How long a direct probe waits before indirect probes are sent.
    pub probe_timeout: Duration,
    /// How many members are asked to probe indirectly (SWIM's `k`), also the leave fan-out.
    pub indirect_probes: usize,
    /// How long a suspect has to refute before it is declared down (for up to 10 members).
    pub suspicion_timeout: Duration,
    /// How often pending membership and registry updates are pushed.
    pub gossip_interval: Duration,
    /// How many members each push goes to.
    pub gossip_fanout: usize,
    /// How many times each update is piggybacked before it is dropped from the backlog.
    pub max_transmissions: u8,
    /// How often registry digests are compared with a random member.
    pub anti_entropy_interval: Duration,
    /// How long `start` waits for a seed to answer the join sync.
    pub join_timeout: Duration,
    /// How often unanswered seeds are asked again while joining.
    pub join_retry: Duration,
    /// Bound on each packet sent through the transport (connect, send and answer).
    pub gossip_timeout: Duration,
    /// How often a random member is asked for its view.
    pub announce_interval: Duration,
    /// How often two down members are knocked on (partition healing).
    pub announce_down_interval: Duration,
    /// How long a down member is remembered.
    pub remove_down_after: Duration,
    /// Largest SWIM packet built or accepted, in bytes.
    pub max_packet_size: usize,
    /// Capacity of the [`subscribe`](pulsing_core::Membership::subscribe) channel; a slow
    /// subscriber misses the oldest events (`RecvError::Lagged`).
    pub event_capacity: usize,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            probe_period: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(250),
            indirect_probes: 3,
            suspicion_timeout: Duration::from_secs(3),
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 3,
            max_transmissions: 10,
            anti_entropy_interval: Duration::from_secs(2),
            join_timeout: Duration::from_secs(5),
            join_retry: Duration::from_millis(500),
            gossip_timeout: Duration::from_secs(1),
            announce_interval: Duration::from_secs(10),
            announce_down_interval: Duration::from_secs(5),
            remove_down_after: Duration::from_secs(600),
            max_packet_size: 32 * 1024,
            event_capacity: 1024,
        }
    }
}

impl ClusterConfig {
    /// The suspicion timeout for a cluster of `members` nodes.
    pub fn suspicion_for(&self, members: usize) -> Duration {
        let scale = (members.max(1) as f64).log10().max(1.0);
        self.suspicion_timeout.mul_f64(scale)
    }

    /// How many times each update is piggybacked in a cluster of `members` nodes:
    /// `max_transmissions`, or `6 * log10(members)` if that is more (so that a refutation reaches
    /// everyone in large clusters even under loss).
    pub fn transmissions_for(&self, members: usize) -> u8 {
        let scaled = (6.0 * (members.max(1) as f64).log10()).ceil();
        self.max_transmissions.max(scaled.min(255.0) as u8)
    }

    /// foca's configuration for a cluster of `members` nodes.
    pub(crate) fn foca(&self, members: usize) -> foca::Config {
        let one = NonZeroUsize::MIN;
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_timeout,
            num_indirect_probes: NonZeroUsize::new(self.indirect_probes).unwrap_or(one),
            max_transmissions: NonZeroU8::new(self.transmissions_for(members))
                .unwrap_or(NonZeroU8::MIN),
            suspect_to_down_after: self.suspicion_for(members),
            remove_down_after: Some(self.remove_down_after),
            max_packet_size: NonZeroUsize::new(self.max_packet_size.max(1024)).unwrap_or(one),
            notify_down_members: true,
            periodic_announce: Some(foca::PeriodicParams {
                frequency: self.announce_interval,
                num_members: one,
            }),
            periodic_announce_to_down_members: Some(foca::PeriodicParams {
                frequency: self.announce_down_interval,
                num_members: NonZeroUsize::new(2).unwrap_or(one),
            }),
            periodic_gossip: Some(foca::PeriodicParams {
                frequency: self.gossip_interval,
                num_members: NonZeroUsize::new(self.gossip_fanout).unwrap_or(one),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspicion_grows_slowly_with_cluster_size() {
        let c = ClusterConfig::default();
        assert_eq!(c.suspicion_for(3), Duration::from_secs(3));
        assert_eq!(c.suspicion_for(10), Duration::from_secs(3));
        assert_eq!(c.suspicion_for(100), Duration::from_secs(6));
        assert_eq!(c.transmissions_for(16), 10);
        assert_eq!(c.transmissions_for(256), 15);
    }
}
