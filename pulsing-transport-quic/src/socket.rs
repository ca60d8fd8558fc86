//! [`DrainingSocket`]: quinn's UDP socket for Tokio, less one syscall per packet received.
//!
//! quinn's endpoint reads datagrams until the socket says `EAGAIN`: after every batch, one more
//! `recvmmsg` that finds nothing. On a request/response link that is one wasted syscall per packet
//! on each side (measured: 4 `recvmmsg` per round trip, 2 of them empty). A `recvmmsg` that
//! returns fewer datagrams than it had room for has emptied the socket's queue, so this socket
//! then clears its read readiness itself, for the readiness it observed before that read: a
//! datagram arriving later raises a new readiness (a new tick of Tokio's), which the clear does not
//! touch, so no wake-up is lost; one that arrived in between only costs the empty read it would
//! have cost anyway.
//!
//! And one wake-up per packet sent: registered for writability, a UDP socket reports an `EPOLLOUT`
//! edge every time the kernel frees a sent datagram's memory, so every send wakes the runtime once
//! more for nothing. This socket is registered for reading only; only when a send finds the
//! socket's buffer full does it register a duplicate of the descriptor for writability (an
//! `epoll` registration reports the current state, so the room that came meanwhile is not missed),
//! and drops it once there is room again.
//!
//! Everything else is quinn's own UDP state (`quinn::udp::UdpSocketState`: GSO, GRO, ECN).
//! Written here, not taken from quinn, because quinn's Tokio socket is private.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A UDP socket for quinn that skips the empty read after a batch that drained the queue.
pub(crate) struct DrainingSocket {
    io: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    /// A send found the buffer full: wait for room through `room`.
    full: AtomicBool,
    /// A duplicate of the socket registered for writability, while `full`.
    room: Mutex<Option<AsyncFd<std::net::UdpSocket>>>,
}

impl DrainingSocket {
    /// Takes over `socket` (made non-blocking) for quinn.
    pub(crate) fn new(socket: std::net::UdpSocket) -> io::Result<DrainingSocket> {
        let state = UdpSocketState::new((&socket).into())?;
        socket.set_nonblocking(true)?;
        Ok(DrainingSocket {
            io: register(socket, Interest::READABLE)?,
            state,
            full: AtomicBool::new(false),
            room: Mutex::new(None),
        })
    }
}

/// Registers `socket` with the runtime for `interest`.
#[allow(unsafe_code)] // Tokio's registration of a raw descriptor: see the SAFETY note.
fn register(
    socket: std::net::UdpSocket,
    interest: Interest,
) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    // SAFETY: the `UdpSocket` owns a valid file descriptor, and the `AsyncFd` owns the socket:
    // nothing closes or replaces the descriptor while it is registered (it is closed when the
    // `AsyncFd` drops the socket, after deregistering).
    unsafe { AsyncFd::register_with_interest(socket, interest).map_err(|e| e.into_parts().1) }
}

impl fmt::Debug for DrainingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainingSocket")
            .field("local", &self.io.get_ref().local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for DrainingSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable(self))
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self.state.send(self.io.get_ref().into(), transmit) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.full.store(true, Ordering::Release);
                Err(e)
            }
            other => other,
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut ready = ready!(self.io.poll_read_ready(cx))?;
            match ready.try_io(|s| self.state.recv(s.get_ref().into(), bufs, meta)) {
                Ok(Ok(n)) => {
                    if n < bufs.len().min(meta.len()) {
                        // The queue was emptied by this read: no need to ask again to learn it.
                        ready.clear_ready();
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // `EAGAIN`: readiness cleared by `try_io`; wait for the next.
                Err(_would_block) => continue,
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.io.get_ref().local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

/// quinn's wait for room to send: the socket's write readiness.
struct Writable(Arc<DrainingSocket>);

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writable").finish_non_exhaustive()
    }
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let socket = &self.0;
        if !socket.full.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let mut room = socket.room.lock().unwrap_or_else(|p| p.into_inner());
        if room.is_none() {
            let dup = socket.io.get_ref().try_clone()?;
            *room = Some(register(dup, Interest::WRITABLE)?);
        }
        let Some(fd) = room.as_ref() else {
            return Poll::Pending;
        };
        let _ready = ready!(fd.poll_write_ready(cx))?;
        // Room again: back to sending without write wake-ups.
        *room = None;
        socket.full.store(false, Ordering::Release);
        Poll::Ready(Ok(()))
    }
}
