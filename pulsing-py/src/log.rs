//! How the `tracing` events of the Rust core reach Python's `logging`, under loggers named
//! `pulsing.*`, without a Tokio thread ever waiting for the GIL.
//!
//! At import [`install`] makes [`PythonLogs`] the process's global `tracing` subscriber (a
//! `tracing_subscriber` registry with this one layer; a subscriber already set is left alone). The
//! layer, on whatever thread the event happens:
//!
//! - filters by callsite, so a disabled event costs one comparison with `tracing`'s global max
//!   level (the layer answers `register_callsite` with always or never and gives `max_level_hint`;
//!   a change of level rebuilds `tracing`'s interest cache);
//! - formats an enabled event (span names, message, ` key=value` fields) into a [`Record`] and
//!   queues it: at most [`CAPACITY`] records wait, later ones are counted and dropped, and a
//!   warning saying how many were dropped follows the next flush;
//! - on the first push after a flush, wakes the asyncio loops of the live hubs the way a hub wakes
//!   its loop for its own events (one byte on its socket pair).
//!
//! [`flush`] runs at the end of every `Hub::drain`, on the loop thread with the GIL, and hands the
//! whole batch to `pulsing._logging.emit`, which logs each record under its logger with the event's
//! time, file and line, and the Rust thread's name as `threadName`. Records made while no hub
//! exists wait (bounded) for the first drain.
//!
//! Which events are recorded:
//!
//! - without `RUST_LOG`, those the Python side lets through: the lowest of the `pulsing` logger's
//!   effective level and any level set on a `pulsing.*` logger (`pulsing._logging.threshold`),
//!   read at import, when a hub is created, and at most once a second by [`flush`]. Each logger
//!   then applies its own level as usual;
//! - with `RUST_LOG` (read once, at import), those its directives allow, Python levels aside:
//!   `debug`, or lists like `warn,pulsing_core=debug,h2=off` (the longest matching target prefix
//!   wins; without a plain level, other targets get `error`). Those records go to the handlers
//!   whatever the loggers' levels (the handlers' own levels still apply).
//!
//! Logger names: `pulsing_core::cell` → `pulsing.core.cell` (the crate prefix `pulsing_` dropped,
//! `::` → `.`), the facade's `pulsing::x` → `pulsing.x`, this crate's `_pulsing::x` →
//! `pulsing.py.x`, any other crate's target under `pulsing.deps` (`h2::proto` →
//! `pulsing.deps.h2.proto`); the bridge's own warnings (a bad `RUST_LOG` directive, dropped
//! records) go to `pulsing`. Levels: `ERROR` → 40, `WARN` → 30, `INFO` → 20, `DEBUG` → 10,
//! `TRACE` → 5 (named `TRACE` in `logging`).

use std::fmt::{Debug, Write as _};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::batch::Batch;
use crate::hub::HubShared;

/// How many records may wait for a flush; later ones are dropped and counted.
pub(crate) const CAPACITY: usize = 10_000;

/// How often [`flush`] re-reads the Python level, in milliseconds.
const REFRESH_MS: u64 = 1_000;

/// An event waiting for the loop.
struct Record {
    meta: &'static Metadata<'static>,
    message: String,
    at: SystemTime,
    thread: Option<String>,
}

/// The `RUST_LOG` directives, when it is set; then they alone decide (see the module docs).
static ENV: OnceLock<Option<Directives>> = OnceLock::new();
/// Without `RUST_LOG`: the most verbose level recorded, as [`encode`] writes it.
static LEVEL: AtomicU8 = AtomicU8::new(2);
/// Records waiting for a loop; a push that finds no wake-up pending wakes the live hubs.
static QUEUE: Batch<Record> = Batch::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static HUBS: Mutex<Vec<Watched>> = Mutex::new(Vec::new());
static NEXT_REFRESH_MS: AtomicU64 = AtomicU64::new(0);
static START: OnceLock<Instant> = OnceLock::new();

/// A live hub that can flush records, and how to wake its loop.
struct Watched {
    hub: Weak<HubShared>,
    wake: Wake,
}

/// Wakes a hub's loop, which then drains it and so calls [`flush`].
type Wake = fn(&HubShared);

/// Makes [`PythonLogs`] the global subscriber, its level taken from `RUST_LOG` or from Python.
///
/// # Errors
///
/// If `pulsing._logging` cannot be imported or its `threshold()` fails.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    let mut bad = Vec::new();
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| Directives::parse(&v, &mut bad));
    let forced = env.is_some();
    let _ = ENV.set(env);
    if !forced {
        refresh(py)?;
    }
    let subscriber = tracing_subscriber::registry().with(PythonLogs);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        for d in bad {
            tracing::warn!(
                target: "pulsing",
                "RUST_LOG: ignored the directive {d:?} (not `level` or `target=level`)"
            );
        }
    }
    Ok(())
}

/// Registers a new hub, whose drains flush the records, and re-reads the Python level (so a user
/// who configured `logging` before creating a system gets their level). `wake` wakes its loop.
pub(crate) fn register_hub(hub: Weak<HubShared>, wake: Wake) {
    if let Some(h) = hub.upgrade() {
        if QUEUE.is_pending() {
            // Records queued before any hub could be woken.
            wake(&h);
        }
    }
    {
        let mut hubs = HUBS.lock().unwrap_or_else(|p| p.into_inner());
        hubs.retain(|w| w.hub.strong_count() > 0);
        hubs.push(Watched { hub, wake });
    }
    if !forced() {
        Python::attach(|py| {
            if let Err(e) = refresh(py) {
                e.write_unraisable(py, None);
            }
        });
    }
}

/// Emits every queued record through `logging` (on the loop thread, with the GIL). Cheap when
/// nothing is queued. Errors are reported as unraisable.
pub(crate) fn flush(py: Python<'_>) {
    if !forced() {
        let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
        if now >= NEXT_REFRESH_MS.load(Ordering::Relaxed) {
            NEXT_REFRESH_MS.store(now + REFRESH_MS, Ordering::Relaxed);
            if let Err(e) = refresh(py) {
                e.write_unraisable(py, None);
            }
        }
    }
    if !QUEUE.is_pending() {
        return;
    }
    let mut records = Vec::new();
    QUEUE.take_into(&mut records);
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if let Err(e) = emit(py, records) {
        e.write_unraisable(py, None);
    }
    if dropped > 0 {
        // Queued like any event, so it obeys the same filter; it comes with the next batch.
        tracing::warn!(
            target: "pulsing",
            "dropped {dropped} log records of the Rust core: more than {CAPACITY} were waiting \
             for the asyncio loop"
        );
    }
}

fn emit(py: Python<'_>, records: Vec<Record>) -> PyResult<()> {
    static EMIT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let batch = PyList::empty(py);
    for r in records {
        let at = r.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        batch.append((
            logger_name(r.meta.target()),
            python_level(*r.meta.level()),
            r.message,
            r.meta.file().unwrap_or("<rust>"),
            r.meta.line().unwrap_or(0),
            at.as_nanos() as u64,
            r.thread,
        ))?;
    }
    EMIT.import(py, "pulsing._logging", "emit")?
        .call1((batch, forced()))?;
    Ok(())
}

/// Re-reads the Python level (without `RUST_LOG`); on a change `tracing` asks every callsite again.
fn refresh(py: Python<'_>) -> PyResult<()> {
    static THRESHOLD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let threshold: i64 = THRESHOLD
        .import(py, "pulsing._logging", "threshold")?
        .call0()?
        .extract()?;
    let level = encode(level_for_threshold(threshold));
    if LEVEL.swap(level, Ordering::SeqCst) != level {
        tracing::callsite::rebuild_interest_cache();
    }
    Ok(())
}

fn forced() -> bool {
    matches!(ENV.get(), Some(Some(_)))
}

/// The most verbose `tracing` level whose `logging` level is at least `threshold`.
fn level_for_threshold(threshold: i64) -> LevelFilter {
    match threshold {
        ..=5 => LevelFilter::TRACE,
        6..=10 => LevelFilter::DEBUG,
        11..=20 => LevelFilter::INFO,
        21..=30 => LevelFilter::WARN,
        31..=40 => LevelFilter::ERROR,
        _ => LevelFilter::OFF,
    }
}

fn python_level(level: Level) -> u8 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

fn encode(filter: LevelFilter) -> u8 {
    match filter.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(Level::TRACE) => 5,
    }
}

fn decode(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

/// The Python logger for a `tracing` target (see the module docs).
fn logger_name(target: &str) -> String {
    let dotted = target.replace("::", ".");
    let (krate, rest) = dotted.split_once('.').unwrap_or((&dotted, ""));
    let base = match krate {
        "pulsing" => "pulsing".to_owned(),
        // This crate: its library is `_pulsing`.
        "_pulsing" => "pulsing.py".to_owned(),
        k => match k.strip_prefix("pulsing_") {
            Some(sub) => format!("pulsing.{sub}"),
            None => format!("pulsing.deps.{k}"),
        },
    };
    if rest.is_empty() {
        base
    } else {
        format!("{base}.{rest}")
    }
}

/// `RUST_LOG`: a default level and per-target levels, longest target first.
struct Directives {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Directives {
    /// Parses `level` and `target=level` items separated by commas; a bare target means `trace`.
    /// Items that are neither go to `bad`.
    fn parse(spec: &str, bad: &mut Vec<String>) -> Directives {
        let mut default = None;
        let mut targets = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.split_once('=') {
                Some((target, level)) => match level.trim().parse::<LevelFilter>() {
                    Ok(level) if is_target(target.trim()) => {
                        targets.push((target.trim().to_owned(), level))
                    }
                    _ => bad.push(item.to_owned()),
                },
                None => match item.parse::<LevelFilter>() {
                    Ok(level) => default = Some(level),
                    Err(_) if is_target(item) => {
                        targets.push((item.to_owned(), LevelFilter::TRACE))
                    }
                    Err(_) => bad.push(item.to_owned()),
                },
            }
        }
        targets.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Directives {
            default: default.unwrap_or(LevelFilter::ERROR),
            targets,
        }
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .find(|(t, _)| target.starts_with(t.as_str()))
            .map_or(self.default, |(_, l)| *l)
    }

    fn max(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, l)| *l)
            .fold(self.default, std::cmp::max)
    }
}

/// A target as `RUST_LOG` names it: a Rust path, no span or field filters.
fn is_target(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
}

/// The layer that queues enabled events for `logging` (see the module docs).
struct PythonLogs;

impl PythonLogs {
    fn allows(meta: &Metadata<'_>) -> bool {
        let filter = match ENV.get() {
            Some(Some(d)) => d.level_for(meta.target()),
            _ => decode(LEVEL.load(Ordering::Relaxed)),
        };
        *meta.level() <= filter
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for PythonLogs {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::allows(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        Self::allows(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match ENV.get() {
            Some(Some(d)) => d.max(),
            _ => decode(LEVEL.load(Ordering::Relaxed)),
        })
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut message = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                let _ = write!(message, "{}: ", span.name());
            }
        }
        let mut text = Text::default();
        event.record(&mut text);
        message.push_str(&text.message);
        message.push_str(&text.fields);
        push(Record {
            meta: event.metadata(),
            message,
            at: SystemTime::now(),
            thread: std::thread::current().name().map(str::to_owned),
        });
    }
}

/// Queues `record` (or counts it dropped) and, if it is the first since a flush, wakes the hubs.
fn push(record: Record) {
    let (queued, wake) = QUEUE.push_bounded(record, CAPACITY);
    if !queued {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
    if !wake {
        return;
    }
    // Wake every live hub: whichever loop drains first emits the batch, and a hub that was closed
    // (its loop no longer reading) does not hold the records back. The lock is released before the
    // wake-ups, and the hubs are dropped after them, outside it.
    let live: Vec<(Arc<HubShared>, Wake)> = HUBS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(|w| w.hub.upgrade().map(|h| (h, w.wake)))
        .collect();
    for (hub, wake) in &live {
        wake(hub);
    }
}

/// An event's message and its other fields as ` key=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}
