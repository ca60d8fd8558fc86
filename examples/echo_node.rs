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
//! | | | `whoami` | `whoami` whose payload is `echo`'s own ref, one msgpack ref value (see below) |
//! | | | `call_back` | payload `msgpack([[ref], {}])`: asks that ref `increment` with `msgpack([[1], {}])`, replies with its reply |
//! | | | anything else | `echo` with the same payload |
//! | `secret` | private | any | never reachable over the network: `404 not_found` |
//!
//! ```text
//! printf '\x82\xa8msg_type\xa4ping\xa7payload\xc4\x02hi' |
//!   curl -s --http2-prior-knowledge -H 'content-type: application/msgpack' \
//!        --data-binary @- http://127.0.0.1:8080/actor/echo | xxd
//! ```
//!
//! `whoami` and `call_back` speak the method-call convention of Python `@as_actor` actors (payload
//! `msgpack([args, kwargs])`, reply `msgpack(value)`) with actor refs as msgpack extension values
//! (`docs/protocol.md`, "Actor refs inside payloads"), so from Python `await echo.whoami()` is a
//! working `ActorRef` to `echo`, and `await echo.call_back(counter)` calls `counter.increment(1)` from
//! Rust and returns its result.

use std::io::Write as _;

use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::{
    Actor, ActorError, ActorSystem, Context, Message, PulsingError, SpawnOptions, REF_EXT_TYPE,
};
use rmpv::Value;

#[path = "shared/echo.rs"]
mod echo;

/// The public actor `echo`: `whoami` and `call_back` here, the rest in [`echo::reply`].
struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, ctx: &mut Context) -> Result<Message, ActorError> {
        let (msg_type, payload) = msg.into_single()?;
        match msg_type.as_str() {
            // A msgpack payload that is one ext value: the ref itself is the reply's value.
            "whoami" => Ok(Message::single("whoami", ctx.myself().encode_ext())),
            "call_back" => {
                let ext_data = ref_argument(&payload).ok_or_else(|| {
                    ActorError::with_type(
                        "EchoError",
                        "call_back takes msgpack([[ref], {}]): one actor ref argument",
                    )
                })?;
                let target = ctx.system().decode_ref(&ext_data)?;
                // `increment(1)`; the reply, `msgpack(value)`, goes back to our caller as it is.
                Ok(target
                    .ask(Message::single("increment", call_payload(vec![1.into()])))
                    .await?)
            }
            _ => echo::reply(&msg_type, payload, 16).await,
        }
    }
}

/// The extension data of the one argument of `msgpack([[ref], {}])`, if that is the payload.
fn ref_argument(payload: &[u8]) -> Option<Vec<u8>> {
    let mut rest = payload;
    let Value::Array(call) = rmpv::decode::read_value(&mut rest).ok()? else {
        return None;
    };
    let [Value::Array(args), Value::Map(_)] = call.as_slice() else {
        return None;
    };
    let [Value::Ext(REF_EXT_TYPE, data)] = args.as_slice() else {
        return None;
    };
    rest.is_empty().then(|| data.clone())
}

/// `msgpack([args, {}])`: the payload of a method call with positional arguments only.
fn call_payload(args: Vec<Value>) -> Vec<u8> {
    let call = Value::Array(vec![Value::Array(args), Value::Map(Vec::new())]);
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &call).expect("writing msgpack into a Vec cannot fail");
    out
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
