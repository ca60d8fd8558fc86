//! The reference node of the HTTP wire protocol (`docs/protocol.md`): test a client in any language
//! against it.
//!
//! ```text
//! cargo run --release --example echo_node -- --addr 127.0.0.1:8080
//! ```
//!
//! Prints `listening <addr>`, then `ready` once it accepts connections, and serves until killed.
//!
//! | actor | visibility | `msg_type` | reply |
//! |---|---|---|---|
//! | `echo` | public | `fail` | handler error: `500 actor_error`, message `EchoError: fail requested` |
//! | | | `stream` | payload `n` (decimal text): a streamed reply of `n` items `echo` with payloads `0`..`n-1` |
//! | | | `sleep` | payload `ms` (decimal text): waits that long, then replies `echo` with the payload |
//! | | | anything else | `echo` with the same payload |
//! | `secret` | private | any | never reachable over the network: `404 not_found` |
//!
//! ```text
//! printf '\x82\xa8msg_type\xa4ping\xa7payload\xc4\x02hi' |
//!   curl -s --http2-prior-knowledge -H 'content-type: application/msgpack' \
//!        --data-binary @- http://127.0.0.1:8080/actor/echo | xxd
//! ```

use std::io::Write as _;

use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::{Actor, ActorError, ActorSystem, Context, Message, PulsingError, SpawnOptions};

#[path = "shared/echo.rs"]
mod echo;

/// The public actor `echo` (see [`echo::reply`]).
struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        let (msg_type, payload) = msg.into_single()?;
        echo::reply(&msg_type, payload, 16).await
    }
}

/// The private actor `secret`.
struct Secret;

impl Actor for Secret {
    async fn receive(&mut self, _: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(Message::single(
            "secret",
            "you should not see this remotely",
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), PulsingError> {
    let mut addr = "127.0.0.1:0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().expect("--addr needs ip:port"),
            "-h" | "--help" => {
                eprintln!("usage: echo_node [--addr ip:port]");
                return Ok(());
            }
            other => {
                eprintln!("unknown argument {other}; usage: echo_node [--addr ip:port]");
                std::process::exit(2);
            }
        }
    }
    let system = ActorSystem::builder()
        .addr(addr)
        .transport(HttpTransport::new(HttpConfig::default()))
        .build()
        .await?;
    system
        .spawn_with(Echo, "echo", SpawnOptions::new().public(true))
        .await?;
    system.spawn(Secret, "secret").await?;
    let bound = system.addr().expect("a system with a transport serves");
    let mut out = std::io::stdout().lock();
    // If stdout is gone there is nobody to tell; keep serving.
    let _ = writeln!(out, "listening {bound}");
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);
    std::future::pending::<()>().await;
    Ok(())
}
