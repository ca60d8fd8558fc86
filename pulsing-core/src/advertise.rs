//! Which address a node tells its peers, when it serves on a wildcard address like `0.0.0.0:8000`.
//!
//! A node bound to `0.0.0.0` accepts on every interface, but peers need one address that reaches it.
//! Unless [`ActorSystemBuilder::advertise_addr`](crate::ActorSystemBuilder::advertise_addr) says which,
//! the node picks, in order:
//!
//! 1. the local address the OS would use to reach the first seed that resolves (a UDP `connect`,
//!    which only consults the routing table and sends nothing);
//! 2. the first non-loopback address its own host name resolves to (what Kubernetes pods and most
//!    LAN hosts give);
//! 3. the loopback address of the bound family.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

/// How long resolving a seed or the host name may take before the next choice is tried.
const RESOLVE_BOUND: Duration = Duration::from_secs(2);

/// The address to advertise for a node bound to `bound`.
pub(crate) async fn advertise_for(bound: SocketAddr, seeds: &[String]) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let port = bound.port();
    for seed in seeds {
        if let Some(ip) = route_to(seed, bound.is_ipv4()).await {
            return SocketAddr::new(ip, port);
        }
    }
    if let Some(ip) = host_name_ip(bound.is_ipv4()).await {
        return SocketAddr::new(ip, port);
    }
    let loopback = if bound.is_ipv4() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    };
    SocketAddr::new(loopback, port)
}

async fn resolve(host_port: &str) -> Vec<SocketAddr> {
    match tokio::time::timeout(RESOLVE_BOUND, tokio::net::lookup_host(host_port)).await {
        Ok(Ok(addrs)) => addrs.collect(),
        _ => Vec::new(),
    }
}

async fn route_to(seed: &str, v4: bool) -> Option<IpAddr> {
    let target = resolve(seed)
        .await
        .into_iter()
        .find(|a| a.is_ipv4() == v4)?;
    let any: SocketAddr = if v4 {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(target).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

async fn host_name_ip(v4: bool) -> Option<IpAddr> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    resolve(&format!("{name}:0"))
        .await
        .into_iter()
        .map(|a| a.ip())
        .find(|ip| ip.is_ipv4() == v4 && !ip.is_loopback() && !ip.is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_specific_bind_address_is_advertised_as_is() {
        let bound: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        assert_eq!(advertise_for(bound, &[]).await, bound);
    }

    #[tokio::test]
    async fn a_wildcard_bind_takes_the_route_to_a_loopback_seed() {
        let bound: SocketAddr = "0.0.0.0:8001".parse().unwrap();
        let got = advertise_for(bound, &["127.0.0.1:8000".into()]).await;
        assert_eq!(got, "127.0.0.1:8001".parse::<SocketAddr>().unwrap());
    }

    #[tokio::test]
    async fn a_wildcard_bind_without_seeds_advertises_a_concrete_address() {
        let bound: SocketAddr = "0.0.0.0:8002".parse().unwrap();
        let got = advertise_for(bound, &[]).await;
        assert!(!got.ip().is_unspecified());
        assert_eq!(got.port(), 8002);
    }
}
