//! QUIC nodes whose UDP socket is often full: every node's socket is wrapped
//! (`QuicConfig::socket_wrapper`) by [`Choked`], which now and then refuses sends with
//! `WouldBlock` for a couple of milliseconds and reports room once that is over, as a kernel
//! buffer that fills does. The transport's driver must keep what it could not send and send it
//! once there is room: every tell arrives, in order, and every ask is answered.
#![cfg(feature = "quic")]

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pulsing::quic::quinn::udp::{RecvMeta, Transmit};
use pulsing::quic::quinn::{AsyncUdpSocket, UdpPoller};
use pulsing::quic::{QuicConfig, QuicTransport, SocketWrapper};
use pulsing::{Actor, ActorError, ActorSystem, Message, SpawnOptions};

/// Sends after which the socket chokes (one in this many).
const CHOKE_EVERY: u64 = 40;
/// How long a choke lasts.
const CHOKE_FOR: Duration = Duration::from_millis(2);

/// The inner socket, refusing sends with `WouldBlock` for [`CHOKE_FOR`] after one send in
/// [`CHOKE_EVERY`]; its poller reports room once the choke is over.
#[derive(Debug)]
struct Choked {
    inner: Arc<dyn AsyncUdpSocket>,
    /// Until when sends are refused.
    until: Mutex<Option<Instant>>,
    sends: AtomicU64,
    refused: Arc<AtomicU64>,
}

impl Choked {
    fn choked_until(&self) -> Option<Instant> {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        match *until {
            Some(t) if Instant::now() < t => Some(t),
            _ => {
                *until = None;
                None
            }
        }
    }
}

/// Waits for a [`Choked`] socket's choke to end, then for the inner socket's own room.
struct Room {
    socket: Arc<Choked>,
    inner: Pin<Box<dyn UdpPoller>>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").finish_non_exhaustive()
    }
}

impl UdpPoller for Room {
    fn poll_writable(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(until) = self.socket.choked_until() {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until.into())));
            sleep.as_mut().reset(until.into());
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.sleep = None;
        self.inner.as_mut().poll_writable(cx)
    }
}

impl AsyncUdpSocket for Choked {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Room {
            inner: self.inner.clone().create_io_poller(),
            socket: self,
            sleep: None,
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        if self.choked_until().is_some() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.sends.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(CHOKE_EVERY) {
            *self.until.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Instant::now() + CHOKE_FOR);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

fn choked(refused: &Arc<AtomicU64>) -> SocketWrapper {
    let refused = refused.clone();
    Arc::new(move |inner| {
        Arc::new(Choked {
            inner,
            until: Mutex::new(None),
            sends: AtomicU64::new(0),
            refused: refused.clone(),
        }) as Arc<dyn AsyncUdpSocket>
    })
}

/// Counts tells numbered from 0, noting the first out of order; `count` answers how many came,
/// anything else is echoed.
#[derive(Default)]
struct Sink {
    next: u64,
    out_of_order: Option<(u64, u64)>,
}

impl Actor for Sink {
    async fn receive(
        &mut self,
        msg: Message,
        _: &mut pulsing::Context,
    ) -> Result<Message, ActorError> {
        let (t, p) = msg.into_single().expect("single messages");
        match t.as_str() {
            "n" => {
                let n: u64 = std::str::from_utf8(&p).unwrap().parse().unwrap();
                if n != self.next && self.out_of_order.is_none() {
                    self.out_of_order = Some((self.next, n));
                }
                self.next = n + 1;
                Ok(Message::single("ok", ""))
            }
            "count" => Ok(Message::single(
                "count",
                format!("{} {:?}", self.next, self.out_of_order),
            )),
            _ => Ok(Message::single(t, p)),
        }
    }
}

async fn node(refused: &Arc<AtomicU64>) -> (ActorSystem, SocketAddr) {
    let transport = QuicTransport::new(QuicConfig::default().socket_wrapper(choked(refused)))
        .expect("a QUIC transport");
    let system = ActorSystem::builder()
        .addr("127.0.0.1:0")
        .transport(transport)
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("a QUIC node");
    let addr = system.addr().expect("serves");
    (system, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_refused_by_a_full_socket_are_sent_once_there_is_room() {
    const TELLS: u64 = 20_000;
    const ASKS: usize = 300;
    let body = async {
        let refused = Arc::new(AtomicU64::new(0));
        let (a, _) = node(&refused).await;
        let (b, b_addr) = node(&refused).await;
        b.spawn_with(Sink::default(), "sink", SpawnOptions::new().public(true))
            .await
            .expect("spawn the sink");
        let sink = a.remote_ref(b_addr, "sink").expect("a name");

        // Asks with 4 KiB payloads: several datagrams each way, often cut by a choke.
        let big = "x".repeat(4096);
        for i in 0..ASKS {
            let payload = format!("{i} {big}");
            let reply = sink
                .ask(Message::single("echo", payload.clone()))
                .await
                .unwrap_or_else(|e| panic!("ask {i} of {ASKS} failed: {e:?}"));
            let (_, p) = reply.into_single().expect("a single reply");
            assert_eq!(
                &p[..],
                payload.as_bytes(),
                "ask {i} answered with its bytes"
            );
        }
        // A flood of tells from one task: large packets, many chokes.
        for n in 0..TELLS {
            sink.tell(Message::single("n", n.to_string()))
                .await
                .unwrap_or_else(|e| panic!("tell {n} failed: {e:?}"));
        }
        let reply = sink
            .ask(Message::single("count", ""))
            .await
            .expect("the count, after every tell");
        let (_, p) = reply.into_single().expect("a single reply");
        assert_eq!(
            std::str::from_utf8(&p).unwrap(),
            format!("{TELLS} None"),
            "every tell arrived, in order"
        );
        let refused = refused.load(Ordering::Relaxed);
        eprintln!("{refused} sends refused with WouldBlock");
        assert!(
            refused > 100,
            "the socket was full often ({refused} refusals)"
        );
        a.shutdown().await;
        b.shutdown().await;
    };
    tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .expect("the test's time bound (60 s)");
}
