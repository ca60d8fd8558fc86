//! An in-memory network for cluster tests: a router from addresses to inbound handlers, with a
//! kill switch per address (a killed node neither receives nor sends, like `kill -9`).
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use pulsing::{
    async_trait, Delivery, InboundHandler, Message, PulsingError, RemoteTarget, Transport,
};

#[derive(Default)]
pub struct Net {
    routes: Mutex<HashMap<SocketAddr, Arc<dyn InboundHandler>>>,
    killed: Mutex<HashSet<SocketAddr>>,
    next_port: Mutex<u16>,
}

impl Net {
    pub fn new() -> Arc<Net> {
        Arc::new(Net {
            next_port: Mutex::new(20_000),
            ..Net::default()
        })
    }

    pub fn transport(self: &Arc<Net>) -> MemTransport {
        MemTransport {
            net: self.clone(),
            addr: Arc::new(OnceLock::new()),
        }
    }

    /// Cuts `addr` off for good: calls to it are refused, calls from it fail.
    pub fn kill(&self, addr: SocketAddr) {
        self.killed.lock().unwrap().insert(addr);
    }

    fn route(
        &self,
        from: Option<SocketAddr>,
        to: SocketAddr,
    ) -> Result<Arc<dyn InboundHandler>, PulsingError> {
        let killed = self.killed.lock().unwrap();
        if from.is_some_and(|f| killed.contains(&f)) || killed.contains(&to) {
            return Err(refused(to));
        }
        drop(killed);
        self.routes
            .lock()
            .unwrap()
            .get(&to)
            .cloned()
            .ok_or_else(|| refused(to))
    }
}

fn refused(to: SocketAddr) -> PulsingError {
    PulsingError::NodeUnreachable {
        addr: to.to_string(),
        reason: "connection refused".into(),
        delivery: Delivery::NotDelivered,
    }
}

#[derive(Clone)]
pub struct MemTransport {
    net: Arc<Net>,
    addr: Arc<OnceLock<SocketAddr>>,
}

impl MemTransport {
    fn target(&self, t: &RemoteTarget) -> Result<Arc<dyn InboundHandler>, PulsingError> {
        let handler = self.net.route(self.addr.get().copied(), t.addr)?;
        if t.node.is_some_and(|n| n != handler.node_id()) {
            return Err(PulsingError::NotFound(t.name.to_string()));
        }
        Ok(handler)
    }
}

#[async_trait]
impl Transport for MemTransport {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn serve(
        &self,
        addr: SocketAddr,
        handler: Arc<dyn InboundHandler>,
    ) -> Result<SocketAddr, PulsingError> {
        let addr = if addr.port() == 0 {
            let mut next = self.net.next_port.lock().unwrap();
            *next += 1;
            SocketAddr::from(([127, 0, 0, 1], *next))
        } else {
            addr
        };
        self.net.routes.lock().unwrap().insert(addr, handler);
        let _ = self.addr.set(addr);
        Ok(addr)
    }

    async fn ask(
        &self,
        t: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, PulsingError> {
        let handler = self.target(t)?;
        tokio::time::timeout(timeout, handler.ask(t.name.as_str(), msg, Some(timeout)))
            .await
            .map_err(|_| PulsingError::Timeout(timeout))?
    }

    async fn tell(
        &self,
        t: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<(), PulsingError> {
        let handler = self.target(t)?;
        tokio::time::timeout(timeout, handler.tell(t.name.as_str(), msg))
            .await
            .map_err(|_| PulsingError::Timeout(timeout))?
    }

    async fn gossip(
        &self,
        to: SocketAddr,
        packet: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, PulsingError> {
        let from = self.addr.get().copied();
        let handler = self.net.route(from, to)?;
        tokio::time::timeout(timeout, handler.gossip(from, packet))
            .await
            .map_err(|_| PulsingError::Timeout(timeout))?
    }

    async fn shutdown(&self) {
        if let Some(addr) = self.addr.get() {
            self.net.routes.lock().unwrap().remove(addr);
        }
    }
}
