//! One cluster node as an OS process: serves over HTTP or QUIC, joins through seeds, optionally
//! runs one public actor. `tests/cluster_processes.rs` starts three of these and kills one with
//! `kill -9`; `tests/quic_cluster.rs` mixes QUIC and HTTP-only ones.
//!
//! ```text
//! cargo run --example cluster_node -- --name node-a                           # a seed
//! cargo run --example cluster_node -- --name node-b --seeds 127.0.0.1:PORT_A  # joins it
//! cargo run --example cluster_node --features quic -- --transport quic --name node-c --seeds 127.0.0.1:PORT_A
//! ```
//!
//! | flag | default | meaning |
//! |---|---|---|
//! | `--addr ip:port` | `127.0.0.1:0` | the address to serve on (port 0: a free port) |
//! | `--seeds a,b` | none (a new cluster) | seed addresses to join through, `host:port`, comma-separated |
//! | `--name NAME` | none (no actor) | spawn a public actor `NAME` |
//! | `--transport http\|quic` | `http` | `http`: the HTTP transport (TCP port P). `quic`: the QUIC transport (`QuicConfig::default()`): QUIC on UDP port P for calls and gossip, HTTP on TCP port P, peers that do not answer QUIC called over TCP, so both kinds of node mix in one cluster. `quic` needs the facade's `quic` feature (`--features quic`); without it the flag is refused |
//! | `--secrets A[,B]` | `PULSING_SECRET`, else none | cluster secrets (`docs/security.md`): the first is presented, all are accepted (rotation). With one, TLS only and peers authenticated |
//! | `--api-token T` | none | an API token HTTP clients may send as `Authorization: Bearer T` (needs a secret); repeatable |
//! | `--quic-idle-timeout SECS` | 4 (`QuicConfig::default()`) | with `--transport quic`: the QUIC idle timeout (a connection silent this long is closed). QUIC peers use the shorter of their two; a test that wants only the membership to notice a silent node raises it on both sides |
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
//! | `relay` | payload: an actor name; this node finds it and asks it to echo (node to node, over this node's transport); the address of the node that answered. Fails with `not found` if `find` finds none, or with the error of that ask |
//! | `members` | this node's view of the cluster: one line per member, `<addr> <state>` (`Alive`, `Suspect`, `Down`, `Left`) |
//! | `burn` | payload: milliseconds as decimal text; the handler spins on its worker thread that long without awaiting (actor code at 100% CPU), then echoes |
//! | anything else | the request's payload (an echo) |

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use pulsing::{Actor, ActorError, Context, Message, PulsingError, SpawnOptions};

/// The public actor `NAME`: says where it runs, echoes, and answers `find`, `relay` and `members`
/// from its node's view.
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
        if msg_type == "relay" {
            let name = std::str::from_utf8(&payload)?;
            let Some(to) = ctx.system().find(name).await else {
                return Err(ActorError::new(format!("not found: {name}")));
            };
            let (answered_by, _) = to
                .ask(Message::single("echo", "relayed"))
                .await?
                .into_single()?;
            return Ok(Message::single(self.addr.clone(), answered_by));
        }
        if msg_type == "members" {
            let view: String = ctx
                .system()
                .members()
                .iter()
                .map(|m| format!("{} {:?}\n", m.addr, m.state))
                .collect();
            return Ok(Message::single(self.addr.clone(), view));
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

/// The transport `--transport` picks.
#[derive(Clone, Copy)]
enum TransportKind {
    /// The facade's default transport, HTTP.
    Http,
    /// QUIC, with HTTP on the same port.
    #[cfg(feature = "quic")]
    Quic,
}

struct Args {
    addr: String,
    seeds: Vec<String>,
    name: Option<String>,
    transport: TransportKind,
    quic_idle_timeout: Option<std::time::Duration>,
    secrets: Vec<String>,
    api_tokens: Vec<String>,
}

const USAGE: &str = "usage: cluster_node [--addr ip:port] [--seeds host:port,...] [--name NAME] \
                     [--transport http|quic] [--quic-idle-timeout SECS] \
                     [--secrets A[,B]] [--api-token T]...";

fn parse() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:0".into(),
        seeds: Vec::new(),
        name: None,
        transport: TransportKind::Http,
        quic_idle_timeout: None,
        secrets: Vec::new(),
        api_tokens: Vec::new(),
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
            "--secrets" => args.secrets = value()?.split(',').map(str::to_owned).collect(),
            "--api-token" => args.api_tokens.push(value()?),
            "--transport" => {
                args.transport = match value()?.as_str() {
                    "http" => TransportKind::Http,
                    #[cfg(feature = "quic")]
                    "quic" => TransportKind::Quic,
                    #[cfg(not(feature = "quic"))]
                    "quic" => {
                        return Err("--transport quic: this cluster_node was built without the \
                                    `quic` feature (build it with `--features quic`)"
                            .into())
                    }
                    other => return Err(format!("unknown transport {other:?} (http or quic)")),
                };
            }
            "--quic-idle-timeout" => {
                let secs = value()?;
                let secs: u64 = secs
                    .parse()
                    .map_err(|e| format!("--quic-idle-timeout {secs:?}: {e}"))?;
                args.quic_idle_timeout = Some(std::time::Duration::from_secs(secs));
            }
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.quic_idle_timeout.is_some() && matches!(args.transport, TransportKind::Http) {
        return Err("--quic-idle-timeout needs --transport quic".into());
    }
    Ok(args)
}

async fn run(args: Args) -> Result<(), PulsingError> {
    let mut builder = pulsing::system_builder().addr(args.addr).seeds(args.seeds);
    if !args.secrets.is_empty() {
        builder = builder.secrets(args.secrets);
    }
    if !args.api_tokens.is_empty() {
        builder = builder.api_tokens(args.api_tokens);
    }
    let builder = match args.transport {
        TransportKind::Http => builder,
        #[cfg(feature = "quic")]
        TransportKind::Quic => {
            let mut config = pulsing::quic::QuicConfig::default();
            if let Some(idle) = args.quic_idle_timeout {
                config = config.idle_timeout(idle);
            }
            builder.transport(pulsing::quic::QuicTransport::new(config)?)
        }
    };
    let system = builder.build().await?;
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
