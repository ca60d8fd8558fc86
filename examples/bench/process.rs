//! `--runtime process` of the remote scenarios: the serving node in a second OS process.

use std::net::SocketAddr;

use super::{node, run_client, runtime, serve, Block, Figures, Served};

/// The server half of `--runtime process`: a node of `block` (its transport, and its secret if
/// any), on a multi-thread runtime, in its own OS process; prints the node's address and then its
/// [`floor`] address, one a line; serves until standard input closes.
pub(super) fn serve_process(block: Block) {
    runtime("multi").block_on(async {
        let server = node(block).await;
        let served = serve(&server, block).await;
        println!("{}", served.node);
        println!("{}", served.floor);
        for floor in [served.quic_floor, served.quic_proto_floor] {
            match floor {
                Some(addr) => println!("{addr}"),
                None => println!("none"),
            }
        }
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await;
        server.shutdown().await;
    });
}

/// `--runtime process`: two OS processes, each with a multi-thread runtime, as two nodes run; the
/// server process serves `block` (`--transport`, and `--secret` for a TLS block, on its
/// command line).
pub(super) fn client_process(block: Block, which: &str, ops: usize) -> Figures {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().expect("own path");
    let mut child = std::process::Command::new(exe);
    child.args([
        "--scenario",
        "__serve",
        "--transport",
        block.kind.name(),
        "--runtime",
        "multi",
    ]);
    if let Some(secret) = block.secret() {
        child.args(["--secret", secret]);
    }
    let mut child = child
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut addr = || -> SocketAddr {
        let mut line = String::new();
        out.read_line(&mut line).expect("server address");
        line.trim().parse().expect("server prints its addresses")
    };
    let (at, floor) = (addr(), addr());
    let mut maybe = || -> Option<SocketAddr> {
        let mut line = String::new();
        out.read_line(&mut line).expect("server QUIC floor address");
        line.trim().parse().ok()
    };
    let (quic_floor, quic_proto_floor) = (maybe(), maybe());
    let served = Served {
        node: at,
        floor,
        quic_floor,
        quic_proto_floor,
    };
    let figures = runtime("multi").block_on(async {
        let client = node(block).await;
        let (c, w) = (client.clone(), which.to_owned());
        let figures = tokio::spawn(async move { run_client(block, &c, served, &w, ops).await })
            .await
            .expect("bench task");
        client.shutdown().await;
        figures
    });
    drop(child.stdin.take());
    let _ = child.wait();
    figures
}
