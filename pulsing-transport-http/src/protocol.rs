//! The HTTP side of `docs/protocol.md` without IO: paths, header names, content types, the status of
//! each error kind, and the text bodies of `GET /metrics` and `GET /actors`.

use std::fmt::Write as _;
use std::time::Duration;

use http::StatusCode;
use pulsing_core::{ActorName, ErrorKind, MemberState, NodeId, PulsingError, SystemStats};

/// Path prefix of actor calls: `POST /actor/{name}`.
pub const ACTOR_PREFIX: &str = "/actor/";
/// Path of membership packets.
pub const GOSSIP_PATH: &str = "/cluster/gossip";
/// Path of the liveness probe.
pub const HEALTH_PATH: &str = "/health";
/// Path of the Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";
/// Path of the list of public actors.
pub const ACTORS_PATH: &str = "/actors";

/// Content type of envelopes, single replies and error bodies.
pub const MSGPACK: &str = "application/msgpack";
/// Content type of streamed replies.
pub const STREAM: &str = "application/x-pulsing-stream";
/// Content type of gossip packets.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Request header: `ask` (default) or `tell`.
pub const HEADER_MODE: &str = "x-pulsing-mode";
/// Request header: the caller's remaining time in milliseconds.
pub const HEADER_TIMEOUT_MS: &str = "x-pulsing-timeout-ms";
/// Request header: the boot id the caller means; response header: the serving node's boot id.
pub const HEADER_NODE: &str = "x-pulsing-node";
/// Request header of gossip: the sender's serving address.
pub const HEADER_FROM: &str = "x-pulsing-from";

/// Largest accepted `x-pulsing-timeout-ms` (2^53, the largest integer every JSON/JS client can hold).
const MAX_TIMEOUT_MS: u64 = 1 << 53;

/// The HTTP status of an error kind (protocol.md §5).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::ActorError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Overloaded | ErrorKind::Stopped | ErrorKind::Shutdown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Unreachable | ErrorKind::StreamTruncated => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `kind` written on the wire for `err`: its [`ErrorKind`] name, or for an error received with a
/// kind this version does not know ([`PulsingError::Other`]), that kind verbatim (so relaying keeps it).
pub fn wire_kind(err: &PulsingError) -> &str {
    match err {
        PulsingError::Other { kind, .. } => kind,
        other => other.kind().as_str(),
    }
}

/// The HTTP status of an error (protocol.md §5): by its kind.
pub fn status_of_error(err: &PulsingError) -> StatusCode {
    status_of(err.kind())
}

/// The error a client reports for a response without a decodable error body (protocol.md §5).
pub fn error_from_status(status: StatusCode, detail: &str) -> PulsingError {
    let message = format!("HTTP {status} without a Pulsing error body{detail}");
    match status {
        StatusCode::BAD_REQUEST => PulsingError::BadMessage(message),
        StatusCode::NOT_FOUND => PulsingError::NotFound(message),
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => {
            PulsingError::RemoteTimeout(message)
        }
        StatusCode::PAYLOAD_TOO_LARGE => PulsingError::TooLarge(message),
        StatusCode::UNAUTHORIZED => PulsingError::Unauthorized(message),
        StatusCode::SERVICE_UNAVAILABLE => PulsingError::MailboxFull(message),
        _ => PulsingError::Other {
            kind: "other".into(),
            message,
        },
    }
}

/// Whether a `content-type` value means msgpack (parameters ignored, case-insensitive).
pub fn is_msgpack(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    essence.eq_ignore_ascii_case(MSGPACK.as_bytes())
        || essence.eq_ignore_ascii_case(b"application/x-msgpack")
}

/// How an actor call is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Wait for the reply.
    Ask,
    /// Answer once the message is queued.
    Tell,
}

/// Parses `x-pulsing-mode`.
///
/// # Errors
///
/// [`PulsingError::BadMessage`] for anything but `ask` / `tell`.
pub fn parse_mode(value: Option<&[u8]>) -> Result<Mode, PulsingError> {
    match value {
        None => Ok(Mode::Ask),
        Some(v) if v.eq_ignore_ascii_case(b"ask") => Ok(Mode::Ask),
        Some(v) if v.eq_ignore_ascii_case(b"tell") => Ok(Mode::Tell),
        Some(v) => Err(PulsingError::BadMessage(format!(
            "{HEADER_MODE} must be ask or tell, got {:?}",
            String::from_utf8_lossy(v)
        ))),
    }
}

/// Parses `x-pulsing-timeout-ms`.
///
/// # Errors
///
/// [`PulsingError::BadMessage`] unless it is a decimal integer in `1..=2^53`.
pub fn parse_timeout_ms(value: Option<&[u8]>) -> Result<Option<Duration>, PulsingError> {
    let Some(v) = value else { return Ok(None) };
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms))
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            PulsingError::BadMessage(format!(
                "{HEADER_TIMEOUT_MS} must be an integer of milliseconds in 1..=2^53, got {:?}",
                String::from_utf8_lossy(v)
            ))
        })
}

/// The value of `x-pulsing-timeout-ms` for a remaining time (at least 1 ms).
pub fn timeout_header(remaining: Duration) -> String {
    let ms = remaining.as_millis().clamp(1, u128::from(MAX_TIMEOUT_MS));
    ms.to_string()
}

/// Parses `x-pulsing-node`: exactly 16 hex digits.
///
/// # Errors
///
/// [`PulsingError::BadMessage`] otherwise.
pub fn parse_node(value: &[u8]) -> Result<NodeId, PulsingError> {
    let bad = || {
        PulsingError::BadMessage(format!(
            "{HEADER_NODE} must be 16 hex digits, got {:?}",
            String::from_utf8_lossy(value)
        ))
    };
    if value.len() != 16 || !value.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    let s = std::str::from_utf8(value).map_err(|_| bad())?;
    u64::from_str_radix(s, 16).map(NodeId).map_err(|_| bad())
}

/// The `not_found` answer to a call addressed to another run of this node.
pub fn node_mismatch(wanted: NodeId, serving: NodeId) -> PulsingError {
    PulsingError::NotFound(format!(
        "node restarted: the call was for node run {wanted}, this node is run {serving}; \
         the message was not delivered"
    ))
}

/// The actor name in `path`, if `path` is `/actor/{name}`.
///
/// # Errors
///
/// `Ok(None)` for another path; [`PulsingError::InvalidName`] for `/actor/{bad}`.
pub fn actor_name(path: &str) -> Result<Option<ActorName>, PulsingError> {
    let Some(rest) = path.strip_prefix(ACTOR_PREFIX) else {
        return Ok(None);
    };
    if rest.contains('/') {
        return Ok(None);
    }
    ActorName::new(rest).map(Some)
}

/// The body of `GET /actors`: a JSON array of names, sorted. Names use an alphabet that needs no JSON
/// escaping (see [`ActorName`]).
pub fn actors_json(names: &[ActorName]) -> String {
    let mut sorted: Vec<&str> = names.iter().map(ActorName::as_str).collect();
    sorted.sort_unstable();
    let mut out = String::from("[");
    for (i, n) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(n);
        out.push('"');
    }
    out.push(']');
    out
}

/// The body of `GET /metrics`, Prometheus text format 0.0.4 (protocol.md §6).
pub fn metrics_text(stats: &SystemStats) -> String {
    let mut out = String::with_capacity(1024);
    let mut metric = |name: &str, ty: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {ty}\n{name} {value}\n"
        );
    };
    metric(
        "pulsing_actors",
        "gauge",
        "Local actors running.",
        stats.actors as u64,
    );
    metric(
        "pulsing_messages_handled_total",
        "counter",
        "Messages handled by local actors.",
        stats.messages_handled,
    );
    metric(
        "pulsing_queued_messages",
        "gauge",
        "Messages waiting in local mailboxes.",
        stats.queued,
    );
    metric(
        "pulsing_in_flight_asks",
        "gauge",
        "Asks sent from this node that have not ended.",
        stats.in_flight_asks,
    );
    metric(
        "pulsing_expired_asks_total",
        "counter",
        "Asks skipped because the caller had given up.",
        stats.expired_asks,
    );
    metric(
        "pulsing_panics_total",
        "counter",
        "Handler panics.",
        stats.panics,
    );
    metric(
        "pulsing_restarts_total",
        "counter",
        "Actor restarts.",
        stats.restarts,
    );
    metric(
        "pulsing_bad_links_total",
        "counter",
        "Node-to-node links closed for breaking the link protocol.",
        stats.bad_links,
    );
    out.push_str(
        "# HELP pulsing_errors_total Errors returned to callers on this node, by kind.\n\
         # TYPE pulsing_errors_total counter\n",
    );
    for (kind, n) in &stats.errors {
        let _ = writeln!(out, "pulsing_errors_total{{kind=\"{kind}\"}} {n}");
    }
    out.push_str(
        "# HELP pulsing_dead_letters_total Pipelined tells lost after they were sent, by kind.\n\
         # TYPE pulsing_dead_letters_total counter\n",
    );
    for (kind, n) in &stats.dead_letters {
        let _ = writeln!(out, "pulsing_dead_letters_total{{kind=\"{kind}\"}} {n}");
    }
    out.push_str(
        "# HELP pulsing_members Cluster members known to this node, by state.\n\
         # TYPE pulsing_members gauge\n",
    );
    for state in [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Down,
        MemberState::Left,
    ] {
        let n = stats
            .members
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "pulsing_members{{state=\"{}\"}} {n}",
            member_state_name(state)
        );
    }
    out
}

fn member_state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Down => "down",
        MemberState::Left => "left",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_documented_status() {
        let table = [
            (ErrorKind::BadRequest, 400),
            (ErrorKind::NotFound, 404),
            (ErrorKind::TooLarge, 413),
            (ErrorKind::ActorError, 500),
            (ErrorKind::Overloaded, 503),
            (ErrorKind::Stopped, 503),
            (ErrorKind::Shutdown, 503),
            (ErrorKind::Timeout, 504),
            (ErrorKind::AlreadyExists, 409),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::Unreachable, 502),
            (ErrorKind::StreamTruncated, 502),
            (ErrorKind::Config, 500),
            (ErrorKind::Other, 500),
        ];
        for (kind, status) in table {
            assert_eq!(status_of(kind).as_u16(), status, "{kind}");
        }
    }

    #[test]
    fn node_ids_parse_from_their_display_form_only() {
        let id = NodeId(0x00ab_cdef_0123_4567);
        assert_eq!(parse_node(id.to_string().as_bytes()).unwrap(), id);
        assert_eq!(
            parse_node(b"00ABCDEF01234567").unwrap(),
            NodeId(0x00ab_cdef_0123_4567)
        );
        for bad in [&b"abc"[..], b"+0abcdef01234567", b"00abcdef0123456g", b""] {
            assert!(parse_node(bad).unwrap_err().is_bad_message());
        }
    }

    #[test]
    fn timeouts_and_modes_parse_strictly() {
        assert_eq!(parse_timeout_ms(None).unwrap(), None);
        assert_eq!(
            parse_timeout_ms(Some(b"250")).unwrap(),
            Some(Duration::from_millis(250))
        );
        for bad in [&b"0"[..], b"-1", b"1.5", b"x", b"99999999999999999999"] {
            assert!(parse_timeout_ms(Some(bad)).is_err());
        }
        assert_eq!(parse_mode(Some(b"TELL")).unwrap(), Mode::Tell);
        assert!(parse_mode(Some(b"maybe")).is_err());
        assert_eq!(timeout_header(Duration::from_micros(10)), "1");
    }

    #[test]
    fn content_types_match_with_parameters_and_case() {
        assert!(is_msgpack(b"application/msgpack"));
        assert!(is_msgpack(b"Application/X-MsgPack; charset=binary"));
        assert!(!is_msgpack(b"application/json"));
        assert!(!is_msgpack(b""));
    }

    #[test]
    fn actor_paths_yield_names() {
        assert_eq!(actor_name("/actor/echo").unwrap().unwrap().as_str(), "echo");
        assert!(actor_name("/actors").unwrap().is_none());
        assert!(actor_name("/actor/a/b").unwrap().is_none());
        assert!(actor_name("/actor/%2e%2e").unwrap_err().is_bad_message());
    }

    #[test]
    fn actors_list_is_sorted_json() {
        let names = [ActorName::new("b").unwrap(), ActorName::new("a.1").unwrap()];
        assert_eq!(actors_json(&names), r#"["a.1","b"]"#);
        assert_eq!(actors_json(&[]), "[]");
    }

    #[test]
    fn metrics_list_every_error_kind() {
        let mut stats = SystemStats::default();
        stats.errors = vec![(ErrorKind::NotFound, 3), (ErrorKind::Timeout, 0)];
        let text = metrics_text(&stats);
        assert!(text.contains("pulsing_errors_total{kind=\"not_found\"} 3\n"));
        assert!(text.contains("pulsing_errors_total{kind=\"timeout\"} 0\n"));
        assert!(text.contains("# TYPE pulsing_actors gauge\npulsing_actors 0\n"));
    }
}
