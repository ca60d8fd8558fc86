//! Simulates a cluster with `pulsing_cluster::sim` (virtual clock, seeded RNG, packet loss) and
//! prints the figures as JSON, in simulated seconds:
//!
//! ```text
//! cargo run --release --example cluster_sim -- --nodes 256 --loss 0.1 [--minutes 10] [--seed 1]
//!     [--suspicion-ms 3000] [--indirect-probes 3]
//!     [--max-transmissions 10] [--log trace.txt]
//! ```
//!
//! 1. `--nodes` nodes join through one seed at once: `converge_s` is the time until every node sees
//!    every other one and holds its registry entry.
//! 2. With `--loss` on, the cluster runs for `--minutes`: `false_deaths` counts nodes declared down
//!    while they were running (one per observer); `rejoins` counts nodes that learnt they had been
//!    declared down somewhere and rejoined under a renewed identity.
//! 3. One node is killed: `crash_detected_s` is the time until no node lists it or its actors.

use std::time::{Duration, Instant};

use pulsing_cluster::sim::Sim;
use pulsing_cluster::ClusterConfig;

struct Args {
    nodes: usize,
    loss: f64,
    minutes: f64,
    seed: u64,
    log: Option<String>,
    config: ClusterConfig,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        nodes: 64,
        loss: 0.0,
        minutes: 10.0,
        seed: 1,
        log: None,
        config: ClusterConfig::default(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--nodes" => args.nodes = value.parse().map_err(|e| bad(&e))?,
            "--loss" => args.loss = value.parse().map_err(|e| bad(&e))?,
            "--minutes" => args.minutes = value.parse().map_err(|e| bad(&e))?,
            "--seed" => args.seed = value.parse().map_err(|e| bad(&e))?,
            "--log" => args.log = Some(value),
            "--suspicion-ms" => {
                let ms = value.parse().map_err(|e| bad(&e))?;
                args.config.suspicion_timeout = Duration::from_millis(ms);
            }
            "--max-transmissions" => {
                args.config.max_transmissions = value.parse().map_err(|e| bad(&e))?;
            }
            "--indirect-probes" => {
                args.config.indirect_probes = value.parse().map_err(|e| bad(&e))?;
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.nodes < 2 {
        return Err("--nodes must be at least 2".into());
    }
    Ok(args)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("null".into(), |d| format!("{:.3}", d.as_secs_f64()))
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "cluster_sim: {e}\nusage: cluster_sim --nodes N --loss P [--minutes M] [--seed S]"
            );
            std::process::exit(2);
        }
    };
    let wall = Instant::now();
    let config = args.config.clone();
    let mut sim = Sim::new(args.seed, config.clone());
    let first = sim.add_node(&[]);
    let slots: Vec<_> = (1..args.nodes).map(|_| sim.add_node(&[first])).collect();
    sim.set_loss(args.loss);
    let converge = sim.run_until(Duration::from_secs(600), Sim::converged);
    sim.run_for(Duration::from_secs_f64(args.minutes * 60.0));
    let false_deaths = sim.false_deaths();
    let rejoins = sim.rejoins();
    let still_converged = sim.run_until(Duration::from_secs(60), Sim::converged);
    let victim_slot = slots[slots.len() / 2];
    let victim = sim.node_id(victim_slot).expect("running");
    sim.crash(victim_slot);
    let crash = sim.run_until(Duration::from_secs(120), |s| s.forgotten_everywhere(victim));
    if let Some(path) = &args.log {
        if let Err(e) = std::fs::write(path, sim.log().join("\n")) {
            eprintln!("cluster_sim: cannot write {path}: {e}");
        }
    }
    println!(
        "{{\"nodes\": {}, \"loss\": {}, \"seed\": {}, \"simulated_minutes_under_loss\": {}, \
         \"converge_s\": {}, \"false_deaths\": {}, \"rejoins\": {}, \"reconverged_after_loss_s\": {}, \
         \"crash_detected_s\": {}, \"suspicion_timeout_s\": {:.3}, \"packets\": {}, \
         \"wall_clock_s\": {:.1}}}",
        args.nodes,
        args.loss,
        args.seed,
        args.minutes,
        secs(converge),
        false_deaths,
        rejoins,
        secs(still_converged),
        secs(crash),
        config.suspicion_for(args.nodes).as_secs_f64(),
        sim.packets(),
        wall.elapsed().as_secs_f64(),
    );
}
