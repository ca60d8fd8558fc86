//! The distributed counter of the remote actors guide, across two OS processes over HTTP.
//!
//! ```text
//! cargo run --example distributed_counter                        # or: make demo (both sides)
//! cargo run --example distributed_counter -- --seed 9000         # node 1: serves the counter, waits
//! cargo run --example distributed_counter -- --join 127.0.0.1:9000   # node 2: calls it, exits
//! ```
//!
//! With no arguments the program runs itself twice: it starts `--seed 0` as a child process, waits
//! for its `ready` line, runs the `--join` side against the address the child printed, then stops the
//! child. It exits non-zero if any expectation fails. Nodes are given addresses directly; cluster
//! discovery (seeds, `system.find`) comes with the cluster crate.
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
use std::time::Duration;

use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::{
    Actor, ActorError, ActorSystem, Context, Message, MessageStream, PulsingError, SpawnOptions,
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

async fn node(addr: &str) -> Result<ActorSystem, PulsingError> {
    ActorSystem::builder()
        .addr(addr)
        .transport(HttpTransport::new(HttpConfig::default()))
        .ask_timeout(Duration::from_secs(10))
        .build()
        .await
}

/// Node 1: serves the public counter until killed.
async fn seed(port: u16) -> Result<(), PulsingError> {
    let system = node(&format!("127.0.0.1:{port}")).await?;
    system
        .spawn_with(
            DistributedCounter { value: 0 },
            "counter",
            SpawnOptions::new().public(true),
        )
        .await?;
    let addr = system.addr().expect("a node with a transport serves");
    let mut out = std::io::stdout().lock();
    // Nobody to tell if stdout is gone; keep serving.
    let _ = writeln!(out, "seed: public actor \"counter\" at {addr}");
    let _ = writeln!(out, "listening {addr}");
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}

/// Node 2: calls the counter at `addr` and checks every answer.
async fn join(addr: SocketAddr) -> Result<(), PulsingError> {
    let system = node("127.0.0.1:0").await?;
    let counter = system.remote_ref(addr, "counter")?;
    println!("join: {counter:?} from {}", system.addr().expect("serves"));

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
    println!("tokens 3     -> {tokens:?} (streamed over HTTP, then a clean end)");

    let err = counter.ask(Message::single("reset", "")).await;
    expect(
        err.as_ref().is_err_and(|e| e.is_actor_error()),
        format!("reset -> {err:?}"),
    )?;
    println!("reset        -> error: {}", err.unwrap_err());

    let reply = counter.ask(Message::single("get", "")).await?;
    expect(text(&reply)? == "5", format!("get -> {}", text(&reply)?))?;
    println!(
        "get          -> {} (state kept after the error)",
        text(&reply)?
    );

    let err = system
        .remote_ref(addr, "nobody")?
        .ask(Message::single("get", ""))
        .await;
    expect(
        err.as_ref().is_err_and(|e| e.is_not_found()),
        format!("nobody -> {err:?}"),
    )?;
    println!("nobody       -> not found");

    system.shutdown().await;
    println!("join: all expectations held");
    Ok(())
}

/// Kills the seed process when dropped, whatever happened.
struct SeedProcess(Child);

impl Drop for SeedProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `<this program> --seed 0` and waits (at most 30 s) for its `ready` line.
fn start_seed() -> Result<(SeedProcess, SocketAddr), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(["--seed", "0"])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn the seed: {e}"))?;
    let stdout = child.stdout.take().ok_or("seed stdout")?;
    let seed = SeedProcess(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut addr = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("  [seed] {line}");
            if let Some(a) = line.strip_prefix("listening ") {
                addr = a.parse::<SocketAddr>().ok();
            }
            if line == "ready" {
                let _ = tx.send(addr);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(addr)) => Ok((seed, addr)),
        Ok(None) => Err("the seed said ready without an address".into()),
        Err(_) => Err("the seed did not print ready within 30 s".into()),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: distributed_counter [--seed PORT | --join ADDR]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--seed", port] => match port.parse() {
            Ok(port) => runtime.block_on(seed(port)).map_err(|e| e.to_string()),
            Err(_) => return usage(),
        },
        ["--join", addr] => match addr.parse() {
            Ok(addr) => runtime.block_on(join(addr)).map_err(|e| e.to_string()),
            Err(_) => return usage(),
        },
        [] => start_seed().and_then(|(seed, addr)| {
            println!("started seed process {} at {addr}", seed.0.id());
            let r = runtime.block_on(join(addr)).map_err(|e| e.to_string());
            drop(seed);
            println!("stopped the seed process");
            r
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
