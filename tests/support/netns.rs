//! Hosts of a test's own: Linux network namespaces joined by a bridge, made with `ip netns` and
//! `ip link` and removed when the [`Lan`] is dropped (also when the test panics), so real links
//! can be cut and restored under running nodes.
//!
//! ```text
//!   pls<pid>-<n>-br:  br0 ── p0 ──┬── p1 ── …          (the bridge, in a namespace of its own)
//!                                 │
//!   pls<pid>-<n>-h0:  eth0 10.77.0.1/24    pls<pid>-<n>-h1: eth0 10.77.0.2/24    …
//! ```
//!
//! Every interface lives inside one of these namespaces (each veth is created there, never in the
//! host's namespace), so the short fixed names (`br0`, `p<i>`, `eth0`) and the 10.77.0.0/24
//! addresses cannot clash with the host or with another run. Namespace names carry the test
//! process's pid; namespaces of a pid that no longer runs (a run that was killed before its guard
//! ran) are removed when a new [`Lan`] is made.
//!
//! Linux only, as root, with `ip` (iproute2); [`Lan::new`] says why when it cannot be had.
#![allow(dead_code, unreachable_pub)]

use std::ffi::c_int;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where `ip netns add` mounts the namespaces it names.
const NETNS_DIR: &str = "/run/netns";

/// One host of a [`Lan`]: a network namespace with one interface, `eth0`, on the bridge.
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name (for `ip netns exec`, `ip -n`).
    pub ns: String,
    /// The address of its `eth0`.
    pub ip: Ipv4Addr,
    /// The bridge port its `eth0` is plugged into (a veth in the bridge's namespace).
    port: String,
}

/// Hosts joined by a bridge; dropping it removes every namespace it made (and with them their
/// interfaces). Drop the processes running in them first: a namespace lives on, unnamed, while a
/// process is still inside it.
#[derive(Debug)]
pub struct Lan {
    bridge_ns: String,
    hosts: Vec<Host>,
    /// Every namespace made so far, removed on drop.
    made: Vec<String>,
}

impl Lan {
    /// Makes `hosts` hosts, `10.77.0.1`, `10.77.0.2`, …, each plugged into one bridge, links up.
    ///
    /// # Errors
    ///
    /// Why the machine does not allow it (not root, no `ip`, `ip netns add` or a veth refused);
    /// what was made by then is removed.
    pub fn new(hosts: usize) -> Result<Lan, String> {
        assert!((1..=250).contains(&hosts), "1 to 250 hosts");
        match effective_uid() {
            Some(0) => {}
            Some(uid) => {
                return Err(format!(
                    "needs root to make network namespaces (euid {uid})"
                ))
            }
            None => return Err("cannot read the effective uid from /proc/self/status".into()),
        }
        ip(&["-V"]).map_err(|e| format!("needs `ip` (iproute2): {e}"))?;
        remove_stale();

        static RUNS: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "pls{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        let mut lan = Lan {
            bridge_ns: format!("{prefix}-br"),
            hosts: Vec::new(),
            made: Vec::new(),
        };
        lan.add_ns(&lan.bridge_ns.clone())
            .map_err(|e| format!("`ip netns add` is not allowed here: {e}"))?;
        let br = lan.bridge_ns.clone();
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])
            .and_then(|()| ip(&["-n", &br, "link", "set", "br0", "up"]))
            .map_err(|e| format!("cannot make a bridge: {e}"))?;
        for i in 0..hosts {
            let host = Host {
                ns: format!("{prefix}-h{i}"),
                ip: Ipv4Addr::new(10, 77, 0, i as u8 + 1),
                port: format!("p{i}"),
            };
            lan.add_ns(&host.ns)
                .map_err(|e| format!("`ip netns add` is not allowed here: {e}"))?;
            let cidr = format!("{}/24", host.ip);
            let ns = host.ns.as_str();
            let port = host.port.as_str();
            [
                &[
                    "-n", &br, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                    "netns", ns,
                ][..],
                &["-n", &br, "link", "set", port, "master", "br0", "up"],
                &["-n", ns, "addr", "add", &cidr, "dev", "eth0"],
                &["-n", ns, "link", "set", "eth0", "up"],
                &["-n", ns, "link", "set", "lo", "up"],
            ]
            .into_iter()
            .try_for_each(ip)
            .map_err(|e| format!("cannot plug {ns} into the bridge with a veth: {e}"))?;
            lan.hosts.push(host);
        }
        Ok(lan)
    }

    fn add_ns(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.made.push(name.to_owned());
        Ok(())
    }

    /// The hosts, in the order of their addresses.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Cuts `host` off: its bridge port goes down (`ip link set p<i> down`), so its `eth0` loses
    /// carrier and every packet to or from it is dropped, sockets left open (like a pulled cable).
    ///
    /// # Panics
    ///
    /// If `ip` fails.
    pub fn cut(&self, host: &Host) {
        self.set_port(host, "down");
    }

    /// Plugs `host` back in (`ip link set p<i> up`).
    ///
    /// # Panics
    ///
    /// If `ip` fails.
    pub fn restore(&self, host: &Host) {
        self.set_port(host, "up");
    }

    fn set_port(&self, host: &Host, state: &str) {
        ip(&["-n", &self.bridge_ns, "link", "set", &host.port, state])
            .unwrap_or_else(|e| panic!("{} link {state}: {e}", host.ns));
    }

    /// `ip netns exec <ns> <program>`: the program to start (`ip`) and its first arguments, which
    /// run `program` inside `host`. `ip` execs `program`, so the child's pid is the program's.
    pub fn exec(&self, host: &Host, program: &Path) -> (PathBuf, Vec<String>) {
        let mut args: Vec<String> = ["netns", "exec", &host.ns].map(String::from).into();
        args.push(program.to_string_lossy().into_owned());
        (PathBuf::from("ip"), args)
    }

    /// Runs `f` on a thread of its own that has entered `host`'s namespace, and returns what it
    /// returns (a panic in `f` is resumed here). Threads that `f` starts, a tokio runtime's
    /// workers among them, are in that namespace too; sockets they open are the host's.
    ///
    /// # Panics
    ///
    /// If the namespace cannot be entered.
    pub fn run_in<R: Send>(&self, host: &Host, f: impl FnOnce() -> R + Send) -> R {
        let path = Path::new(NETNS_DIR).join(&host.ns);
        let ns = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name(host.ns.clone())
                .spawn_scoped(scope, move || {
                    enter(&ns).unwrap_or_else(|e| panic!("setns {}: {e}", path.display()));
                    drop(ns);
                    f()
                })
                .expect("spawn a thread");
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Hosts first, then the bridge; removing a namespace removes the interfaces in it.
        for ns in self.made.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns: could not remove {ns}: {e}");
            }
        }
    }
}

/// Moves the calling thread into the network namespace `ns` (an open `/run/netns/<name>`).
fn enter(ns: &File) -> std::io::Result<()> {
    extern "C" {
        /// `setns(2)` from the C library std links.
        fn setns(fd: c_int, nstype: c_int) -> c_int;
    }
    const CLONE_NEWNET: c_int = 0x4000_0000;
    // SAFETY: `setns` only reads its two integer arguments; `ns` keeps the descriptor open for
    // the call. It changes the namespace of this thread alone, which owns nothing that depends on
    // the old one.
    if unsafe { setns(ns.as_raw_fd(), CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs `ip args..`, bounded by `ip` itself (it talks to the kernel only).
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Removes namespaces named `pls<pid>-…` whose pid no longer runs: left by a run that was killed.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("pls")
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new("/proc").join(pid.to_string()).exists() {
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
}
