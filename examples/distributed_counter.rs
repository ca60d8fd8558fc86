//! The distributed counter of the remote actors guide, as far as it runs without a network.
//!
//! ```text
//! cargo run --example distributed_counter      # or: make demo
//! ```
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
//! Until the HTTP transport lands (issue 2/4) the caller and the counter share one process and one
//! `ActorSystem`. After that, the same calls run across two OS processes: `--seed` serves the counter,
//! `--join <addr>` finds it through the cluster and calls it.

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

fn text(reply: &Message) -> &str {
    std::str::from_utf8(reply.payload().expect("a single reply")).expect("UTF-8 payload")
}

#[tokio::main]
async fn main() -> Result<(), PulsingError> {
    println!(
        "Runs in one process until the HTTP transport lands (issue 2/4); then the same program \
         runs as two OS processes (--seed / --join)."
    );
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!("{arg}: needs the HTTP transport (issue 2/4); run without arguments");
        std::process::exit(2);
    }

    let system = ActorSystem::builder().build().await?;
    system
        .spawn_with(
            DistributedCounter { value: 0 },
            "counter",
            SpawnOptions::new().public(true),
        )
        .await?;
    println!("spawned public actor \"counter\"");

    let counter = system.find("counter").await.expect("counter was spawned");
    println!("found {counter:?}");

    let reply = counter.ask(Message::single("get", "")).await?;
    assert_eq!((reply.msg_type(), text(&reply)), (Some("value"), "0"));
    println!("get          -> {}", text(&reply));

    let reply = counter.ask(Message::single("increment", "5")).await?;
    assert_eq!((reply.msg_type(), text(&reply)), (Some("value"), "5"));
    println!("increment 5  -> {}", text(&reply));

    let tokens = counter
        .ask_stream(Message::single("tokens", "3"))
        .await?
        .collect()
        .await?;
    let tokens: Vec<&str> = tokens.iter().map(text).collect();
    assert_eq!(tokens, ["token-0", "token-1", "token-2"]);
    println!("tokens 3     -> {tokens:?} (streamed, then a clean end)");

    let err = counter
        .ask(Message::single("reset", ""))
        .await
        .expect_err("unknown msg_type is refused");
    assert!(err.is_actor_error(), "{err}");
    println!("reset        -> error: {err}");

    let reply = counter.ask(Message::single("get", "")).await?;
    assert_eq!(text(&reply), "5");
    println!(
        "get          -> {} (state kept after the error)",
        text(&reply)
    );

    assert!(!system.has_actor("nobody").await);
    println!("has_actor(\"nobody\") -> false");

    system.shutdown().await;
    println!("shut down; all expectations held");
    Ok(())
}
