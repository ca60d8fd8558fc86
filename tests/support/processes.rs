//! Nodes as real OS processes for integration tests: builds an example of this crate once, starts
//! it, waits (bounded) for its `ready <addr>` line, and kills it when the handle is dropped, so no
//! process outlives a failed assert.
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
    // The facade's features this test was built with, so the example links the same library build.
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
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{label}: spawn {}: {e}", bin.display()))?;
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

/// Starts a `cluster_node` process (`examples/cluster_node.rs`) serving the public actor `name`,
/// joining the cluster through `seed` if any.
///
/// # Panics
///
/// If the process does not start or print `ready` in time.
pub fn cluster_node(name: &str, seed: Option<SocketAddr>) -> NodeProcess {
    let bin = example("cluster_node");
    let seed = seed.map(|s| s.to_string());
    let mut args = vec!["--addr", "127.0.0.1:0", "--name", name];
    if let Some(seed) = &seed {
        args.extend(["--seeds", seed.as_str()]);
    }
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
