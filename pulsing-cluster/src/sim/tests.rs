use std::time::Duration;

use super::{Sim, Slot};
use crate::config::ClusterConfig;

fn cluster(seed: u64, n: usize) -> (Sim, Vec<Slot>) {
    let mut sim = Sim::new(seed, ClusterConfig::default());
    let first = sim.add_node(&[]);
    let mut slots = vec![first];
    for _ in 1..n {
        slots.push(sim.add_node(&[first]));
    }
    let took = sim.run_until(Duration::from_secs(60), Sim::converged);
    assert!(took.is_some(), "{n} nodes did not converge");
    (sim, slots)
}

/// The documented detection bound: probed within a few periods, suspected at the next one,
/// declared after the (size-scaled) suspicion timeout, then disseminated.
fn detection_bound(n: usize) -> Duration {
    let c = ClusterConfig::default();
    c.probe_period * 3 + c.suspicion_for(n) + Duration::from_secs(1)
}

#[test]
fn sixty_four_nodes_join_through_one_seed_and_converge() {
    let mut sim = Sim::new(1, ClusterConfig::default());
    let seed = sim.add_node(&[]);
    let slots: Vec<Slot> = (0..64).map(|_| sim.add_node(&[seed])).collect();
    assert!(
        slots.iter().all(|s| sim.joined(*s))
            || sim
                .run_until(Duration::from_secs(1), |s| slots
                    .iter()
                    .all(|x| s.joined(*x)))
                .is_some()
    );
    let took = sim.run_until(Duration::from_secs(60), Sim::converged);
    assert!(took.is_some(), "65 nodes did not converge in 60 s");
    let last = *slots.last().unwrap();
    let first_id = sim.node_id(seed).unwrap();
    assert_eq!(sim.lookup(last, &format!("a{seed}")), vec![first_id]);
    assert_eq!(sim.false_deaths(), 0);
}

#[test]
fn a_joined_node_sees_existing_actors_right_after_its_join_sync() {
    let (mut sim, slots) = cluster(2, 5);
    let late = sim.add_node(&[slots[0]]);
    sim.run_until(Duration::from_secs(2), |s| s.joined(late))
        .expect("join sync answered");
    for s in &slots {
        let name = format!("a{s}");
        assert_eq!(
            sim.lookup(late, &name),
            vec![sim.node_id(*s).unwrap()],
            "{name}"
        );
    }
}

#[test]
fn a_crash_in_three_nodes_is_declared_everywhere_within_five_seconds() {
    let (mut sim, slots) = cluster(3, 3);
    let victim = sim.node_id(slots[2]).unwrap();
    sim.crash(slots[2]);
    let took = sim
        .run_until(Duration::from_secs(30), |s| s.forgotten_everywhere(victim))
        .expect("crash detected");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(sim.lookup(slots[0], &format!("a{}", slots[2])).is_empty());
    assert_eq!(sim.false_deaths(), 0);
}

#[test]
fn a_crash_in_sixteen_nodes_is_declared_everywhere_within_the_documented_bound() {
    let (mut sim, slots) = cluster(4, 16);
    let victim = sim.node_id(slots[7]).unwrap();
    sim.crash(slots[7]);
    let took = sim
        .run_until(Duration::from_secs(60), |s| s.forgotten_everywhere(victim))
        .expect("crash detected");
    assert!(took <= detection_bound(16), "took {took:?}");
    assert_eq!(sim.false_deaths(), 0);
}

#[test]
fn a_graceful_leave_is_seen_without_a_suspicion_phase() {
    let (mut sim, slots) = cluster(5, 8);
    let leaving = sim.node_id(slots[3]).unwrap();
    sim.leave(slots[3]);
    let took = sim
        .run_until(Duration::from_secs(30), |s| s.forgotten_everywhere(leaving))
        .expect("leave seen");
    assert!(
        took < ClusterConfig::default().suspicion_timeout,
        "took {took:?}"
    );
}

#[test]
fn a_partition_of_two_and_three_heals_into_one_view() {
    let (mut sim, slots) = cluster(6, 5);
    sim.partition(&[&slots[..2], &slots[2..]]);
    let a = sim.node_id(slots[0]).unwrap();
    let split = sim.run_until(Duration::from_secs(60), |s| {
        !s.view(slots[4]).contains(&a) && s.view(slots[0]).len() == 1
    });
    assert!(split.is_some(), "each side declares the other down");
    sim.heal();
    let healed = sim.run_until(Duration::from_secs(120), Sim::converged);
    assert!(healed.is_some(), "one view again after healing");
    for s in &slots {
        assert_eq!(sim.view(*s).len(), 4);
    }
}

#[test]
fn ten_percent_loss_for_ten_minutes_kills_nobody() {
    let (mut sim, slots) = cluster(7, 12);
    sim.set_loss(0.1);
    sim.run_for(Duration::from_secs(600));
    assert_eq!(sim.false_deaths(), 0, "false deaths under 10% loss");
    assert_eq!(sim.rejoins(), 0, "nobody was declared down, even briefly");
    sim.set_loss(0.0);
    assert!(sim
        .run_until(Duration::from_secs(30), Sim::converged)
        .is_some());
    assert!(slots.iter().all(|s| sim.is_running(*s)));
}

#[test]
fn a_restart_on_the_same_address_replaces_the_old_identity() {
    let (mut sim, slots) = cluster(8, 5);
    let old = sim.node_id(slots[3]).unwrap();
    sim.restart(slots[3], &[slots[0]]);
    let new = sim.node_id(slots[3]).unwrap();
    assert_ne!(old, new);
    let took = sim.run_until(Duration::from_secs(30), |s| {
        s.forgotten_everywhere(old) && s.converged()
    });
    assert!(took.is_some(), "old identity gone, new one seen everywhere");
    assert_eq!(sim.lookup(slots[0], &format!("a{}", slots[3])), vec![new]);
    let members = sim.members(slots[1]);
    assert!(members
        .iter()
        .all(|m| m.id != old || m.state != pulsing_core::MemberState::Alive));
}

#[test]
fn a_lost_registry_update_is_repaired_by_anti_entropy() {
    let (mut sim, slots) = cluster(9, 10);
    let owner = sim.node_id(slots[5]).unwrap();
    sim.register_quietly(slots[5], "quiet");
    sim.run_for(Duration::from_millis(100));
    assert!(
        sim.lookup(slots[0], "quiet").is_empty(),
        "nothing was disseminated"
    );
    let interval = ClusterConfig::default().anti_entropy_interval;
    let took = sim.run_until(interval * 8, |s| {
        slots
            .iter()
            .filter(|x| **x != slots[5])
            .all(|x| s.lookup(*x, "quiet") == vec![owner])
    });
    assert!(took.is_some(), "repaired within 8 anti-entropy intervals");
}

#[test]
fn a_seed_that_never_answers_fails_the_join_after_the_timeout() {
    let mut sim = Sim::new(10, ClusterConfig::default());
    let dead = sim.add_node(&[]);
    sim.crash(dead);
    let lonely = sim.add_node(&[dead]);
    sim.run_for(ClusterConfig::default().join_timeout + Duration::from_secs(1));
    assert!(!sim.joined(lonely));
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let run = |seed| {
        let mut sim = Sim::new(seed, ClusterConfig::default());
        let first = sim.add_node(&[]);
        let slots: Vec<Slot> = (0..8).map(|_| sim.add_node(&[first])).collect();
        sim.set_loss(0.05);
        sim.run_for(Duration::from_secs(10));
        sim.crash(slots[3]);
        sim.run_for(Duration::from_secs(10));
        sim.log().to_vec()
    };
    let a = run(42);
    assert!(a.len() > 20);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
}

#[test]
fn garbage_packets_are_refused_without_panicking() {
    let (mut sim, slots) = cluster(11, 2);
    let _ = slots;
    let node = sim.slots[0].running.as_mut().unwrap();
    let now = Duration::from_secs(100);
    for packet in [
        &[][..],
        &[1],
        &[2, 1],
        &[1, 99],
        &[1, 1, 0, 1, 0, 0, 0, 5, 1, 2],
        &[1, 2, 4, 127, 0, 0, 1],
        &[
            1, 3, 4, 127, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            0, 0, 0xff, 0xff, 0xff, 0xff,
        ],
    ] {
        let err = node.node.handle_packet(now, packet).unwrap_err();
        assert!(
            matches!(err, pulsing_core::PulsingError::BadMessage(_)),
            "{packet:?}: {err}"
        );
    }
}
