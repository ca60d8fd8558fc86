//! The TCP **sentinel**: an idle link to a peer's TCP door, opened beside each QUIC connection.
//! UDP says nothing when the peer's process dies, but its kernel closes the TCP connection: the
//! QUIC connection is closed then (its links fail at once) instead of by the idle timeout.
//!
//! With a cluster secret the TCP door speaks TLS only, so the sentinel does too (ALPN
//! `pulsing-link/1`, this node's certificate), through `tokio-rustls`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pulsing_transport_http::codec::link::{self, LinkDecoder, LinkFrame, LINK_PREFACE};
use quinn_proto::VarInt;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::SERVER_NAME;

/// Keeps `tcp` (connected to the peer's TCP door alongside the QUIC handshake of `conn`) as a
/// sentinel: sends a link preface and hello (over TLS with `tls`), waits at most `bound` for the
/// peer's hello, then reads until the connection ends and closes `conn` then. A peer that does not
/// answer with a hello (it refused the sentinel: another secret, plaintext to a TLS door, not a
/// Pulsing node) gets no sentinel; its QUIC connection is left alone. Ends with `conn`.
pub(crate) async fn watch(
    tcp: TcpStream,
    conn: crate::driver::Connection,
    max_message: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
    bound: Duration,
) {
    let _ = tcp.set_nodelay(true);
    let sentinel = async {
        // The peer's hello is small: this limit only stops a peer that announces a huge frame.
        let mut decoder = LinkDecoder::new(64 * 1024);
        let opened = async {
            let mut io: Pin<Box<dyn Io>> = match tls {
                None => Box::pin(tcp),
                Some(config) => {
                    let name = ServerName::try_from(SERVER_NAME)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    let connector = tokio_rustls::TlsConnector::from(config);
                    Box::pin(connector.connect(name, tcp).await?)
                }
            };
            let mut opening = LINK_PREFACE.to_vec();
            link::put_hello(&mut opening, None, Some(max_message as u64));
            io.write_all(&opening).await?;
            io.flush().await?;
            loop {
                match decoder.next_frame() {
                    Ok(Some(LinkFrame::Hello { .. })) => return Ok::<_, io::Error>(Some(io)),
                    Ok(Some(_)) | Err(_) => return Ok(None),
                    Ok(None) => {}
                }
                if io.read_buf(&mut decoder.buf).await? == 0 {
                    return Ok(None);
                }
            }
        };
        let Ok(Ok(Some(mut io))) = tokio::time::timeout(bound, opened).await else {
            return false;
        };
        // The peer's link answered: from now on the end of this connection is the end of its
        // process (or its TCP door closing at shutdown). Nothing else is read.
        loop {
            decoder.buf.clear();
            match io.read_buf(&mut decoder.buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        gone = sentinel => if gone {
            conn.close(VarInt::from_u32(0), b"the peer's process is gone");
        },
        _ = conn.closed() => {}
    }
}

/// The sentinel's byte stream: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send {}

impl<T: AsyncRead + AsyncWrite + Send> Io for T {}
