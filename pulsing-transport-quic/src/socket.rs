//! [`DrainingSocket`]: quinn's UDP socket for Tokio, less one syscall per packet received.
//!
//! An endpoint's driver (`crate::driver`, as quinn's own) reads datagrams until the socket says
//! `EAGAIN`: after every batch, one more `recvmmsg` that finds nothing. On a request/response link
//! that is one wasted syscall per packet on each side (measured: 4 `recvmmsg` per round trip, 2 of
//! them empty). A `recvmmsg` that
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
//! Linux (and Android) only: elsewhere quinn-udp may read one datagram per call whatever the room,
//! so a short read says nothing about the queue; there quinn's own socket is used.
//!
//! Everything else is quinn's own UDP state (`quinn::udp::UdpSocketState`: GSO, GRO, ECN).
//! Written here, not taken from quinn, because quinn's Tokio socket is private.

use std::fmt;
use std::future::Future;
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
    room: Mutex<Option<Arc<AsyncFd<std::net::UdpSocket>>>>,
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
        Box::pin(Writable {
            socket: self,
            wait: None,
        })
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

/// What a [`Writable`] waits on: room in the socket (or, if no descriptor could be had to watch
/// for it, a short pause before the driver tries again).
type Wait = std::sync::Mutex<Pin<Box<dyn Future<Output = io::Result<()>> + Send>>>;

/// How long the driver pauses before trying a full socket again when no descriptor is left to watch
/// for room (`dup` failed: the process is out of file descriptors).
const NO_WATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

/// A wait for room to send. The `AsyncUdpSocket` contract allows any number for one socket, each
/// waking its own task (quinn's driver makes one per connection, ours one per endpoint): each waits with a future of its own on the shared writability
/// registration, which wakes every waiter.
struct Writable {
    socket: Arc<DrainingSocket>,
    wait: Option<Wait>,
}

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writable").finish_non_exhaustive()
    }
}

impl DrainingSocket {
    /// The registration that reports room in the send buffer: a duplicate of the socket's
    /// descriptor registered for writability, made on first need, shared by every waiter.
    fn room(&self) -> io::Result<Arc<AsyncFd<std::net::UdpSocket>>> {
        let mut room = self.room.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fd) = room.as_ref() {
            return Ok(fd.clone());
        }
        let fd = Arc::new(register(
            self.io.get_ref().try_clone()?,
            Interest::WRITABLE,
        )?);
        *room = Some(fd.clone());
        Ok(fd)
    }
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.wait.is_none() {
            if !this.socket.full.load(Ordering::Acquire) {
                return Poll::Ready(Ok(()));
            }
            let wait: Pin<Box<dyn Future<Output = io::Result<()>> + Send>> =
                match this.socket.room() {
                    Ok(fd) => Box::pin(async move { fd.writable().await.map(|_ready| ()) }),
                    Err(e) => {
                        tracing::debug!(error = %e, "no descriptor to watch a full UDP socket");
                        Box::pin(async {
                            tokio::time::sleep(NO_WATCH_PAUSE).await;
                            Ok(())
                        })
                    }
                };
            this.wait = Some(std::sync::Mutex::new(wait));
        }
        let polled = match &this.wait {
            Some(wait) => wait
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .poll(cx),
            None => Poll::Ready(Ok(())),
        };
        let result = ready!(polled);
        this.wait = None;
        // Room again (for every waiter: each holds the registration until it is done): back to
        // sending without write wake-ups. A send that finds it full again starts over.
        this.socket.full.store(false, Ordering::Release);
        *this.socket.room.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Two pollers wait on a full socket: room wakes both (the `AsyncUdpSocket` contract: quinn's
    /// driver makes one poller per connection, each responsible for its own task).
    #[tokio::test(flavor = "current_thread")]
    async fn room_in_a_full_socket_wakes_every_waiting_poller() {
        let std = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = Arc::new(DrainingSocket::new(std).unwrap());
        socket.full.store(true, Ordering::Release);
        let mut pollers = [
            socket.clone().create_io_poller(),
            socket.clone().create_io_poller(),
        ];
        let counts = [
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        ];
        for (p, c) in pollers.iter_mut().zip(&counts) {
            let waker = Waker::from(c.clone());
            let first = p.as_mut().poll_writable(&mut Context::from_waker(&waker));
            assert!(
                first.is_pending(),
                "readiness is not known before the driver ran"
            );
        }
        // The driver learns the (empty) buffer is writable and wakes every waiter.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for c in &counts {
            assert_eq!(c.0.load(Ordering::SeqCst), 1, "each poller's task is woken");
        }
        for (p, c) in pollers.iter_mut().zip(&counts) {
            let waker = Waker::from(c.clone());
            let again = p.as_mut().poll_writable(&mut Context::from_waker(&waker));
            assert!(matches!(again, Poll::Ready(Ok(()))));
        }
        assert!(!socket.full.load(Ordering::Acquire));
    }
}
