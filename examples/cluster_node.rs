//! One cluster node as an OS process: serves over HTTP, joins through seeds, optionally runs one
//! public actor. `tests/cluster_processes.rs` starts three of these and kills one with `kill -9`.
//!
//! ```text
//! cargo run --example cluster_node -- --name node-a                           # a seed
//! cargo run --example cluster_node -- --name node-b --seeds 127.0.0.1:PORT_A  # joins it
//! ```
//!
//! | flag | default | meaning |
//! |---|---|---|
//! | `--addr ip:port` | `127.0.0.1:0` | the address to serve on (port 0: a free port) |
//! | `--seeds a,b` | none (a new cluster) | seed addresses to join through, `host:port`, comma-separated |
//! | `--name NAME` | none (no actor) | spawn a public actor `NAME` |
//!
//! Once it has joined and spawned its actor it prints one line, `ready <advertised addr>`, and
//! nothing else on stdout (errors go to stderr). It serves until its stdin closes (then it leaves
//! the cluster gracefully and exits 0) or until it is killed. Started in the background of a
//! script, give it an open stdin (`sleep infinity | cluster_node ...`): `</dev/null` ends it at once.
//!
//! The actor `NAME` answers every message with a single reply whose `msg_type` is the advertised
//! address of the node that handled it, so a caller can tell which process answered:
//!
//! | request `msg_type` | reply payload |
//! |---|---|
//! | `find` | payload: an actor name; the address of the node `find` on this node returns for it (this node's own address for a local actor), empty if none |
//! | `burn` | payload: milliseconds as decimal text; the handler spins on its worker thread that long without awaiting (actor code at 100% CPU), then echoes |
//! | anything else | the request's payload (an echo) |

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use pulsing::{Actor, ActorError, Context, Message, PulsingError, SpawnOptions};

/// The public actor `NAME`: says where it runs, echoes, and answers `find` from its node's view.
struct Where {
    /// This node's advertised address, as text.
    addr: String,
}

impl Actor for Where {
    async fn receive(&mut self, msg: Message, ctx: &mut Context) -> Result<Message, ActorError> {
        let (msg_type, payload) = msg.into_single()?;
        if msg_type == "find" {
            let name = std::str::from_utf8(&payload)?;
            let found = match ctx.system().find(name).await {
                Some(r) if r.is_local() => self.addr.clone(),
                Some(r) => r.remote_addr().map(|a| a.to_string()).unwrap_or_default(),
                None => String::new(),
            };
            return Ok(Message::single(self.addr.clone(), found));
        }
        if msg_type == "burn" {
            let ms: u64 = std::str::from_utf8(&payload)?.parse()?;
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            let mut x = 0u64;
            while std::time::Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        Ok(Message::single(self.addr.clone(), payload))
    }
}

struct Args {
    addr: String,
    seeds: Vec<String>,
    name: Option<String>,
}

const USAGE: &str = "usage: cluster_node [--addr ip:port] [--seeds host:port,...] [--name NAME]";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:0".into(),
        seeds: Vec::new(),
        name: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = value()?,
            "--seeds" => {
                args.seeds = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            }
            "--name" => args.name = Some(value()?),
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

async fn run(args: Args) -> Result<(), PulsingError> {
    let system = pulsing::system_builder()
        .addr(args.addr)
        .seeds(args.seeds)
        .build()
        .await?;
    let advertised = system
        .advertise_addr()
        .expect("a system with an address serves");
    if let Some(name) = &args.name {
        let actor = Where {
            addr: advertised.to_string(),
        };
        system
            .spawn_with(actor, name, SpawnOptions::new().public(true))
            .await?;
    }

    // Stdin is read on a plain thread (a blocking read); its end, or any read error, ends the node.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });

    let mut out = std::io::stdout().lock();
    // If stdout is gone there is nobody to tell; keep serving.
    let _ = writeln!(out, "ready {advertised}");
    let _ = out.flush();
    drop(out);

    // An error means the sender was dropped, which also means stdin is done.
    let _ = closed_rx.await;
    system.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("cluster_node: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cluster_node: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster_node: {e}");
            ExitCode::FAILURE
        }
    }
}
