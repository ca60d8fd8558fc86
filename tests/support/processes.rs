//! Nodes as real OS processes for integration tests: builds an example of this crate once, starts
//! it, waits (bounded) for its `ready <addr>` line, and kills it when the handle is dropped, so no
//! process outlives a failed assert. Also the requests a test sends to a `cluster_node`'s actor
//! ([`seen_by`], [`members_seen_by`], [`relay`]) and a bounded poll ([`eventually`]).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pulsing::{ActorRef, Message, PulsingError};

/// How long a node process may take to print `ready` (process start, bind, join through a seed).
pub const READY_BOUND: Duration = Duration::from_secs(30);

/// The path of the example `name` of this crate, built (once per test binary) with the profile, the
/// facade features and into the target directory of the running test binary.
///
/// Integration tests get `CARGO_BIN_EXE_<name>` for binaries but not for examples, so the example is
/// built here with `cargo build --example`. The test binary lives in `<target>/<profile dir>/deps/`;
/// the example lands in `<target>/<profile dir>/examples/`.
///
/// # Panics
///
/// If cargo fails or the binary is not where it should be.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    // Held while building, so concurrent tests build each example once and never race cargo.
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps/");
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    // The facade's features this test was built with, so the example links the same library build
    // (and `cluster_node --transport quic` works exactly when this test has QUIC).
    let features: Vec<&str> = [
        ("http", cfg!(feature = "http")),
        ("quic", cfg!(feature = "quic")),
        ("cluster", cfg!(feature = "cluster")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args([
            "build",
            "--quiet",
            "--example",
            name,
            "--no-default-features",
        ])
        .arg(format!("--features={}", features.join(",")))
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some(profile) => {
            cargo.args(["--profile", profile]);
        }
        None => panic!("no profile directory in {}", exe.display()),
    }
    let status = cargo
        .stdin(Stdio::null())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --example {name}: {status}");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "{} was not built", path.display());
    built.insert(name.to_owned(), path.clone());
    path
}

/// A running node process. Dropping it kills the process (SIGKILL on Unix) and reaps it.
pub struct NodeProcess {
    child: Child,
    /// Kept open: the node serves until its stdin closes.
    stdin: Option<ChildStdin>,
    /// The address the node printed in its `ready` line.
    pub addr: SocketAddr,
    /// A label for messages.
    pub label: String,
}

impl NodeProcess {
    /// Starts `bin args..` with stdin and stdout piped (stderr goes to the test's stderr) and waits
    /// at most [`READY_BOUND`] for its `ready <addr>` line.
    ///
    /// # Errors
    ///
    /// If it cannot be spawned, exits, or says nothing in time; the process is killed then.
    pub fn start(bin: &Path, label: &str, args: &[&str]) -> Result<NodeProcess, String> {
        let mut command = Command::new(bin);
        command.args(args);
        NodeProcess::spawn(command, label)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL on Unix: no leave announcement, like `kill -9`) and
    /// reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes the node's stdin, which makes it leave the cluster and exit, and waits at most
    /// `within` for that; kills it if it takes longer.
    ///
    /// # Errors
    ///
    /// If it did not exit in time (then it has been killed).
    pub fn stop(mut self, within: Duration) -> Result<ExitStatus, String> {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if start.elapsed() < within => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => return Err(format!("{}: still running after {within:?}", self.label)),
                Err(e) => return Err(format!("{}: wait: {e}", self.label)),
            }
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts a `cluster_node` process (`examples/cluster_node.rs`) over `transport` (its
/// `--transport`: `http`, or `quic` when this test is built with the facade's `quic` feature, which
/// [`example`] then builds the node with) serving the public actor `name`, joining the cluster
/// through `seed` if any.
///
/// # Panics
///
/// If the process does not start or print `ready` in time.
pub fn cluster_node(transport: &str, name: &str, seed: Option<SocketAddr>) -> NodeProcess {
    cluster_node_with(transport, name, seed, &[])
}

/// [`cluster_node`] with more of its flags, e.g. `["--quic-idle-timeout", "60"]`.
///
/// # Panics
///
/// If the process does not start or print `ready` in time.
pub fn cluster_node_with(
    transport: &str,
    name: &str,
    seed: Option<SocketAddr>,
    flags: &[&str],
) -> NodeProcess {
    let bin = example("cluster_node");
    let args = cluster_node_args(transport, name, seed, flags);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProcess::start(&bin, name, &args).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `body` on a two-worker multi-thread runtime of its own and fails the test if it takes longer
/// than `bound`. (Tests that start processes do it outside the runtime, before `body`.)
pub fn run_within<F: Future<Output = ()>>(bound: Duration, body: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(async {
            tokio::time::timeout(bound, body)
                .await
                .expect("test exceeded its time bound");
        });
}

/// How often [`eventually`] checks.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `done` every [`POLL`] until it holds; panics after `limit`. Returns the time it took.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if done().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// The address at which the `cluster_node` behind `via` finds `name` (its actor's `find`), `None`
/// if it finds none.
///
/// # Panics
///
/// If `via` does not answer.
pub async fn seen_by(via: &ActorRef, name: &str) -> Option<SocketAddr> {
    let reply = via
        .ask(Message::single("find", name.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{} answers find: {e}", via.name()));
    let (_, found) = reply.into_single().expect("a single reply");
    let found = std::str::from_utf8(&found).expect("utf8");
    (!found.is_empty()).then(|| found.parse().expect("an address"))
}

/// The members the `cluster_node` behind `via` sees (its actor's `members`), each with its state
/// as `MemberState`'s name (`Alive`, `Suspect`, `Down`, `Left`).
///
/// # Panics
///
/// If `via` does not answer.
pub async fn members_seen_by(via: &ActorRef) -> Vec<(SocketAddr, String)> {
    let reply = via
        .ask(Message::single("members", ""))
        .await
        .unwrap_or_else(|e| panic!("{} answers members: {e}", via.name()));
    let (_, view) = reply.into_single().expect("a single reply");
    std::str::from_utf8(&view)
        .expect("utf8")
        .lines()
        .map(|line| {
            let (addr, state) = line.split_once(' ').expect("`<addr> <state>`");
            (addr.parse().expect("an address"), state.to_owned())
        })
        .collect()
}

/// Has the `cluster_node` behind `via` ask the actor `name` (found through its own registry,
/// called over its own transport: its actor's `relay`). Returns the address of the node that
/// answered.
///
/// # Errors
///
/// If `via` cannot be asked, or its relayed ask failed (then a [`PulsingError::Actor`] carrying
/// that error's text, or `not found: <name>`).
pub async fn relay(via: &ActorRef, name: &str) -> Result<SocketAddr, PulsingError> {
    let (_, answered_by) = via
        .ask(Message::single("relay", name.to_owned()))
        .await?
        .into_single()?;
    let answered_by = std::str::from_utf8(&answered_by).expect("utf8");
    Ok(answered_by.parse().expect("an address"))
}

/// How the environment of a child differs from the test's: `(name, Some(value))` sets a variable,
/// `(name, None)` removes it (e.g. `("PULSING_SECRET", None)`).
pub type EnvChanges<'a> = &'a [(&'a str, Option<&'a str>)];

fn apply_env(command: &mut Command, env: EnvChanges<'_>) {
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
}

/// The arguments [`cluster_node_with`] passes to `cluster_node`.
fn cluster_node_args(
    transport: &str,
    name: &str,
    seed: Option<SocketAddr>,
    flags: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "--addr",
        "127.0.0.1:0",
        "--name",
        name,
        "--transport",
        transport,
    ]
    .map(String::from)
    .into();
    if let Some(seed) = seed {
        args.extend(["--seeds".to_owned(), seed.to_string()]);
    }
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    args
}

impl NodeProcess {
    /// [`NodeProcess::start`] for a prepared `command` (e.g. one with environment variables set):
    /// its stdin and stdout are piped (stderr goes to the test's stderr), and it must print
    /// `ready <addr>` within [`READY_BOUND`].
    ///
    /// # Errors
    ///
    /// If it cannot be spawned, exits, or says nothing in time; the process is killed then.
    pub fn spawn(mut command: Command, label: &str) -> Result<NodeProcess, String> {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{label}: spawn {:?}: {e}", command.get_program()))?;
        NodeProcess::await_ready(child, label)
    }

    /// Takes over a child whose stdin and stdout are piped and waits for its `ready` line.
    fn await_ready(mut child: Child, label: &str) -> Result<NodeProcess, String> {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut node = NodeProcess {
            child,
            stdin,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            label: label.to_owned(),
        };
        let (tx, rx) = mpsc::channel();
        let reader_label = node.label.clone();
        // Reads to the end, so the node never blocks on a full pipe; reports the first `ready`.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("ready ") {
                    Some(addr) if tx.is_some() => {
                        let parsed = addr
                            .trim()
                            .parse::<SocketAddr>()
                            .map_err(|e| format!("{reader_label}: ready line {line:?}: {e}"));
                        let _ = tx.take().map(|tx| tx.send(parsed));
                    }
                    _ => eprintln!("[{reader_label}] unexpected stdout line: {line}"),
                }
            }
        });
        match rx.recv_timeout(READY_BOUND) {
            Ok(Ok(addr)) => {
                node.addr = addr;
                Ok(node)
            }
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("{label}: no ready line within {READY_BOUND:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = node
                    .child
                    .wait()
                    .map_or("unknown".into(), |s| s.to_string());
                Err(format!("{label}: exited before ready ({status})"))
            }
        }
    }
}

/// [`cluster_node_with`], with `env` applied to the process's environment (e.g.
/// `[("PULSING_SECRET", Some("s"))]`).
///
/// # Panics
///
/// If the process does not start or print `ready` in time.
pub fn cluster_node_env(
    transport: &str,
    name: &str,
    seed: Option<SocketAddr>,
    flags: &[&str],
    env: EnvChanges<'_>,
) -> NodeProcess {
    let mut command = Command::new(example("cluster_node"));
    command.args(cluster_node_args(transport, name, seed, flags));
    apply_env(&mut command, env);
    NodeProcess::spawn(command, name).unwrap_or_else(|e| panic!("{e}"))
}

/// How a process that was run to its end went (see [`run_to_exit`]).
#[derive(Debug)]
pub struct Exited {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr.
    pub stderr: String,
    /// From spawn to exit.
    pub took: Duration,
}

/// Runs `command` (stdin piped and held open, so a node that does start keeps serving instead of
/// leaving; stdout and stderr captured) and waits at most `within` for it to exit by itself: for a
/// process that is expected to fail. Blocking; call it from a plain or blocking thread.
///
/// # Errors
///
/// If it cannot be spawned, or is still running after `within` (it is killed then, and the message
/// holds what it printed).
pub fn run_to_exit(mut command: Command, label: &str, within: Duration) -> Result<Exited, String> {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{label}: spawn {:?}: {e}", command.get_program()))?;
    let stdin = child.stdin.take();
    let read_all = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = read_all(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read_all(child.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if start.elapsed() < within => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("still running after {within:?} (killed)"));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("wait: {e}"));
            }
        }
    };
    let took = start.elapsed();
    drop(stdin);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Ok(status) => Ok(Exited {
            status,
            stdout,
            stderr,
            took,
        }),
        Err(e) => Err(format!(
            "{label}: {e}; stdout: {stdout:?}; stderr: {stderr:?}"
        )),
    }
}

/// Runs a `cluster_node` (as [`cluster_node_with`] would start it, with `env` applied) that is
/// expected to exit by itself, e.g. because its join is refused; see [`run_to_exit`].
///
/// # Errors
///
/// As [`run_to_exit`].
pub fn cluster_node_exit(
    transport: &str,
    name: &str,
    seed: Option<SocketAddr>,
    flags: &[&str],
    env: EnvChanges<'_>,
    within: Duration,
) -> Result<Exited, String> {
    let mut command = Command::new(example("cluster_node"));
    command.args(cluster_node_args(transport, name, seed, flags));
    apply_env(&mut command, env);
    run_to_exit(command, name, within)
}
