"""Shared helpers: plain ``asyncio.run`` (no plugin), and the network capability check."""

from __future__ import annotations

import pytest

import pulsing._pulsing as native

needs_network = pytest.mark.skipif(
    not native.NETWORK_AVAILABLE,
    reason=(
        "needs networking: pulsing::system_builder().addr(\"127.0.0.1:0\") does not build in this "
        "build (the facade has no transport wired in yet, so _pulsing.NETWORK_AVAILABLE is False)"
    ),
)
