//! The distributed counter of the remote actors guide, across two OS processes over HTTP or QUIC.
//!
//! ```text
//! cargo run --example distributed_counter                            # or: make demo (both sides)
//! cargo run --example distributed_counter -- --seed 9000             # node 1: serves the counter
//! cargo run --example distributed_counter -- --join 127.0.0.1:9000   # node 2: finds it, calls it
//! cargo run --example distributed_counter --features quic -- --transport quic   # both, over QUIC
//! ```
//!
//! `--transport http|quic` (default `http`, before or after the other arguments) picks the
//! transport of the node it starts, and of the seed child when both sides run: `http` is the
//! facade's default (`pulsing::system_builder()`), `quic` passes a
//! `pulsing::quic::QuicTransport` (QUIC on UDP port P, HTTP on TCP port P; it needs the facade's
//! `quic` feature). The two sides may use different transports: a QUIC node calls an HTTP-only
//! node over TCP.
//!
//! The join side is given nothing but the seed's address: it joins the cluster through it
//! (`pulsing::system_builder().addr(..).seeds([seed])`) and finds the counter by name with
//! `system.find("counter")`, right after `build()` returns, with no sleep. `--seed` takes a port
//! (served on `127.0.0.1`) or `ip:port` (`0.0.0.0:9000` serves on every interface and advertises
//! the host's address); `--join` takes `host:port`, where the host may be a DNS name.
//!
//! With no arguments (or only `--transport`) the program runs itself twice: it starts `--seed 0` as
//! a child process, waits for its `ready <addr>` line, runs the join side against that address,
//! then kills the seed (`kill -9`) and shows that an ask to the dead node fails with a typed error
//! well within the ask timeout: at once over HTTP (the kernel resets the dead process's TCP
//! connections), after the link keep-alive over QUIC (about 4 s: nothing tells a QUIC endpoint
//! that the process behind a UDP port is gone). It exits non-zero if any expectation fails.
//!
//! A public actor `counter` holds an `i64` and answers:
//!
//! | msg_type | payload | reply |
//! |---|---|---|
//! | `get` | ignored | `value` with the value as decimal text |
//! | `increment` | `n` as decimal text, empty for 1 | `value` with the new value |
//! | `tokens` | `n` as decimal text, empty for 1 | a stream of `n` `token` messages |
//! | anything else | | an actor error |
//!

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pulsing::{
    Actor, ActorError, ActorRef, ActorSystem, ActorSystemBuilder, Context, Message, MessageStream,
    PulsingError, SpawnOptions,
};

struct DistributedCounter {
    value: i64,
}

/// Reads `n` from a payload of decimal text; an empty payload means 1.
fn count(payload: &[u8]) -> Result<i64, ActorError> {
    let text = std::str::from_utf8(payload)?.trim();
    if text.is_empty() {
        Ok(1)
    } else {
        Ok(text.parse()?)
    }
}

impl Actor for DistributedCounter {
    async fn receive(&mut self, msg: Message, _ctx: &mut Context) -> Result<Message, ActorError> {
        let (msg_type, payload) = msg.into_single()?;
        match msg_type.as_str() {
            "get" => Ok(Message::single("value", self.value.to_string())),
            "increment" => {
                self.value += count(&payload)?;
                Ok(Message::single("value", self.value.to_string()))
            }
            "tokens" => {
                let n = count(&payload)?;
                let (tx, stream) = MessageStream::channel(8);
                tokio::spawn(async move {
                    for i in 0..n {
                        let token = Message::single("token", format!("token-{i}"));
                        // Fails only if the consumer went away or stopped reading: stop producing.
                        if tx.send(token).await.is_err() {
                            return;
                        }
                    }
                    tx.end().await;
                });
                Ok(Message::stream(stream))
            }
            other => Err(ActorError::new(format!("unknown msg_type {other:?}"))),
        }
    }
}

fn text(reply: &Message) -> Result<&str, PulsingError> {
    let payload = reply
        .payload()
        .ok_or_else(|| PulsingError::BadMessage("expected a single reply".into()))?;
    std::str::from_utf8(payload).map_err(|e| PulsingError::BadMessage(e.to_string()))
}

/// Fails the run with `what` unless `ok`.
fn expect(ok: bool, what: String) -> Result<(), PulsingError> {
    if ok {
        Ok(())
    } else {
        Err(PulsingError::BadMessage(format!(
            "expectation failed: {what}"
        )))
    }
}

const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The transport a node serves and calls with, from `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransportChoice {
    /// `http`: the facade's default transport.
    Http,
    /// `quic`: QUIC on UDP port P, HTTP on TCP port P.
    #[cfg(feature = "quic")]
    Quic,
}

impl TransportChoice {
    /// The transport `name`d on the command line, or why there is none.
    fn parse(name: &str) -> Result<TransportChoice, String> {
        match name {
            "http" => Ok(TransportChoice::Http),
            #[cfg(feature = "quic")]
            "quic" => Ok(TransportChoice::Quic),
            #[cfg(not(feature = "quic"))]
            "quic" => Err(
                "this build has no QUIC transport: build the example with the facade's \
                 `quic` feature (cargo run --example distributed_counter --features quic -- \
                 --transport quic)"
                    .into(),
            ),
            other => Err(format!("--transport {other:?}: expected http or quic")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            TransportChoice::Http => "http",
            #[cfg(feature = "quic")]
            TransportChoice::Quic => "quic",
        }
    }

    /// What a streamed reply travels over, for the output.
    fn wire(self) -> &'static str {
        match self {
            TransportChoice::Http => "HTTP",
            #[cfg(feature = "quic")]
            TransportChoice::Quic => "QUIC",
        }
    }

    /// `pulsing::system_builder()` with this transport and the example's ask timeout.
    ///
    /// # Errors
    ///
    /// `PulsingError::Config` if the QUIC transport's TLS setup fails.
    fn builder(self) -> Result<ActorSystemBuilder, PulsingError> {
        let builder = pulsing::system_builder().ask_timeout(ASK_TIMEOUT);
        match self {
            TransportChoice::Http => Ok(builder),
            #[cfg(feature = "quic")]
            TransportChoice::Quic => {
                use pulsing::quic::{QuicConfig, QuicTransport};
                Ok(builder.transport(QuicTransport::new(QuicConfig::default())?))
            }
        }
    }
}

/// Node 1: serves the public counter on `addr` until killed.
async fn seed(addr: String, transport: TransportChoice) -> Result<(), PulsingError> {
    let system = transport.builder()?.addr(addr).build().await?;
    system
        .spawn_with(
            DistributedCounter { value: 0 },
            "counter",
            SpawnOptions::new().public(true),
        )
        .await?;
    let addr = system
        .advertise_addr()
        .expect("a node with an address serves");
    let mut out = std::io::stdout().lock();
    // Nobody to tell if stdout is gone; keep serving.
    let _ = writeln!(
        out,
        "seed: public actor \"counter\" on node {addr} ({})",
        transport.name()
    );
    let _ = writeln!(out, "ready {addr}");
    let _ = out.flush();
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}

/// Node 2: joins through `seed_addr` only, finds the counter by name and checks every answer.
/// Returns the system and the counter's ref, for the caller to go on with.
async fn join(
    seed_addr: &str,
    transport: TransportChoice,
) -> Result<(ActorSystem, ActorRef), PulsingError> {
    let system = transport
        .builder()?
        .addr("127.0.0.1:0")
        .seeds([seed_addr])
        .build()
        .await?;
    let me = system.advertise_addr().expect("serves");
    println!(
        "join: node {me} ({}) joined through {seed_addr}; {} members",
        transport.name(),
        system.members().len()
    );

    // No sleep: `build()` returned after the first sync with the seed.
    let counter = system
        .find("counter")
        .await
        .ok_or_else(|| PulsingError::NotFound("counter, right after the join".into()))?;
    let at = counter
        .remote_addr()
        .map_or("this node".into(), |a| a.to_string());
    println!("find counter -> on node {at} (found through the seed, no address given)");

    let reply = counter.ask(Message::single("get", "")).await?;
    expect(text(&reply)? == "0", format!("get -> {}", text(&reply)?))?;
    println!("get          -> {}", text(&reply)?);

    let reply = counter.ask(Message::single("increment", "5")).await?;
    expect(
        text(&reply)? == "5",
        format!("increment 5 -> {}", text(&reply)?),
    )?;
    println!("increment 5  -> {}", text(&reply)?);

    let tokens = counter
        .ask_stream(Message::single("tokens", "3"))
        .await?
        .collect()
        .await?;
    let tokens = tokens.iter().map(text).collect::<Result<Vec<_>, _>>()?;
    expect(
        tokens == ["token-0", "token-1", "token-2"],
        format!("tokens {tokens:?}"),
    )?;
    println!(
        "tokens 3     -> {tokens:?} (streamed over {}, then a clean end)",
        transport.wire()
    );

    let err = counter.ask(Message::single("reset", "")).await;
    expect(
        err.as_ref().is_err_and(|e| e.is_actor_error()),
        format!("reset -> {err:?}"),
    )?;
    println!(
        "reset        -> typed error (is_actor_error): {}",
        err.unwrap_err()
    );

    let reply = counter.ask(Message::single("get", "")).await?;
    expect(text(&reply)? == "5", format!("get -> {}", text(&reply)?))?;
    println!(
        "get          -> {} (state kept after the error)",
        text(&reply)?
    );

    let nobody = system.find("nobody").await;
    expect(nobody.is_none(), format!("find nobody -> {nobody:?}"))?;
    println!("find nobody  -> none (no node runs a public actor of that name)");
    Ok((system, counter))
}

/// After the seed was killed: an ask to its counter fails at once with a typed error.
async fn after_kill(counter: &ActorRef) -> Result<(), PulsingError> {
    let started = Instant::now();
    let err = counter.ask(Message::single("get", "")).await;
    let took = started.elapsed();
    expect(
        err.as_ref()
            .is_err_and(|e| e.is_unreachable() || e.is_not_found()),
        format!("get after the kill -> {err:?}"),
    )?;
    expect(
        took < ASK_TIMEOUT / 2,
        format!("get after the kill took {took:?}"),
    )?;
    let err = err.unwrap_err();
    let kind = if err.is_unreachable() {
        "is_unreachable"
    } else {
        "is_not_found"
    };
    println!(
        "get          -> typed error ({kind}) after {} ms: {err}",
        took.as_millis()
    );
    Ok(())
}

/// Kills the seed process when dropped, whatever happened.
struct SeedProcess(Child);

impl SeedProcess {
    /// `kill -9` (SIGKILL on Unix), then reaps it.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for SeedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `<this program> --seed 0 --transport <transport>` and waits (at most 30 s) for its
/// `ready <addr>` line.
fn start_seed(transport: TransportChoice) -> Result<(SeedProcess, SocketAddr), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(["--seed", "0", "--transport", transport.name()])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn the seed: {e}"))?;
    let stdout = child.stdout.take().ok_or("seed stdout")?;
    let seed = SeedProcess(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("  [seed] {line}");
            if let Some(addr) = line.strip_prefix("ready ") {
                let _ = tx.send(addr.trim().parse::<SocketAddr>().ok());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(addr)) => Ok((seed, addr)),
        Ok(None) => Err("the seed's ready line has no address".into()),
        Err(_) => Err("the seed did not print ready within 30 s".into()),
    }
}

/// Both sides: the seed as a child process, the join side here.
async fn both(
    mut seed: SeedProcess,
    addr: SocketAddr,
    transport: TransportChoice,
) -> Result<(), PulsingError> {
    let (system, counter) = join(&addr.to_string(), transport).await?;
    seed.kill();
    println!("killed the seed process (kill -9)");
    let result = after_kill(&counter).await;
    system.shutdown().await;
    result
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: distributed_counter [--seed PORT|IP:PORT | --join HOST:PORT] [--transport http|quic]"
    );
    ExitCode::from(2)
}

/// Takes `--transport NAME` out of `args`: `http` when it is not there, an error for a missing or
/// unknown name.
fn take_transport(args: &mut Vec<String>) -> Result<TransportChoice, String> {
    let Some(at) = args.iter().position(|a| a == "--transport") else {
        return Ok(TransportChoice::Http);
    };
    let name = args
        .get(at + 1)
        .ok_or("--transport needs a name: http or quic")?
        .clone();
    args.drain(at..at + 2);
    TransportChoice::parse(&name)
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let transport = match take_transport(&mut args) {
        Ok(transport) => transport,
        Err(e) => {
            eprintln!("distributed_counter: {e}");
            return usage();
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--seed", addr] => {
            let addr = match addr.parse::<u16>() {
                Ok(port) => format!("127.0.0.1:{port}"),
                Err(_) => addr.to_owned(),
            };
            runtime
                .block_on(seed(addr, transport))
                .map_err(|e| e.to_string())
        }
        ["--join", addr] => runtime
            .block_on(async {
                let (system, _) = join(addr, transport).await?;
                system.shutdown().await;
                println!("join: all expectations held");
                Ok::<_, PulsingError>(())
            })
            .map_err(|e| e.to_string()),
        [] => start_seed(transport).and_then(|(seed, addr)| {
            println!(
                "started seed process {} at {addr} ({})",
                seed.0.id(),
                transport.name()
            );
            runtime
                .block_on(both(seed, addr, transport))
                .map_err(|e| e.to_string())?;
            println!("all expectations held");
            Ok(())
        }),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("distributed_counter failed: {e}");
            ExitCode::FAILURE
        }
    }
}
