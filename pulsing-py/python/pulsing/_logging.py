"""The Python half of the bridge from the Rust core's ``tracing`` events to :mod:`logging`.

The native module (``pulsing-py/src/log.rs``) queues the core's events off the loop and, at the end
of each hub drain, on the asyncio loop thread, hands them here in one batch. This module decides
nothing about formatting: each event becomes one :class:`logging.LogRecord` under its
``pulsing.*`` logger, carrying the time the event happened, the Rust file and line, and the Rust
thread's name. It also tells the native side which levels to record at all (:func:`threshold`).
"""

from __future__ import annotations

import logging
from typing import TypeAlias

TRACE = 5
"""The level of ``tracing``'s ``TRACE`` events, below :data:`logging.DEBUG`."""

if logging.getLevelName(TRACE) == f"Level {TRACE}":
    logging.addLevelName(TRACE, "TRACE")

Batch: TypeAlias = list[tuple[str, int, str, str, int, int, str | None]]
"""``(logger, level, message, path, line, created_ns, thread_name)`` per event."""


def threshold() -> int:
    """The lowest level any ``pulsing`` logger lets through.

    That is the ``pulsing`` logger's effective level, or a lower level set on a ``pulsing.*``
    logger, and no lower than what :func:`logging.disable` leaves enabled. Events below it are not
    recorded by the core at all; each logger still applies its own level to the rest.
    """
    manager = logging.Logger.manager
    lowest = logging.getLogger("pulsing").getEffectiveLevel()
    for name, logger in list(manager.loggerDict.items()):
        if name.startswith("pulsing.") and isinstance(logger, logging.Logger) and logger.level:
            lowest = min(lowest, logger.level)
    return max(lowest, manager.disable + 1)


def emit(batch: Batch, forced: bool) -> None:
    """Logs each event of ``batch``; ``forced`` (``RUST_LOG`` is set) skips the loggers' levels."""
    for name, level, message, path, line, created_ns, thread in batch:
        logger = logging.getLogger(name)
        if not forced and not logger.isEnabledFor(level):
            continue
        record = logger.makeRecord(name, level, path, line, message, (), None)
        # The event happened on a Tokio thread before this batch was emitted: date it then.
        shift = record.created - created_ns / 1e9
        record.created -= shift
        record.msecs = (created_ns % 1_000_000_000) // 1_000_000 + 0.0
        record.relativeCreated -= shift * 1000
        if thread is not None:
            record.threadName = thread
        logger.handle(record)
