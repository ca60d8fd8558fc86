"""``client_certificate``: credentials for HTTP clients of a node with a cluster secret.

A node given a secret (:meth:`SystemConfig.with_secret`) speaks only TLS and takes HTTP calls only
from clients with a certificate from the cluster CA, which every node derives from the secret, or
with one of its API tokens (``docs/security.md``). This makes such a certificate, for ``curl`` and
other clients that are not Pulsing nodes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pulsing import _pulsing as _native

__all__ = ["ClientCertificate", "client_certificate"]


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate from a cluster's CA, its private key, and the CA's certificate (PEM).

    Whoever holds :attr:`key_pem` can call every public actor of the cluster and is accepted where
    a node is (``docs/security.md``, "Threat model"): hand it out as you would the secret. The key
    is left out of ``repr()``. :meth:`write` puts the three where ``curl`` takes them::

        curl --cert client.pem --key client.key --cacert ca.pem https://127.0.0.1:8000/actors
    """

    cert_pem: str
    """The client certificate, PEM, signed by the cluster CA."""
    key_pem: str = field(repr=False)
    """Its private key (PKCS#8), PEM."""
    ca_pem: str
    """The cluster CA's certificate, PEM: what clients verify nodes with (it holds no secret)."""

    def write(self, directory: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
        """Writes ``client.pem``, ``client.key`` and ``ca.pem`` into ``directory`` (made if
        missing; files already there are replaced) and returns their paths in that order.

        ``client.key`` is readable by its owner only (mode ``0o600``) from the moment it exists.

        Raises:
            OSError: a file cannot be written.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        cert, key, ca = folder / "client.pem", folder / "client.key", folder / "ca.pem"
        cert.write_text(self.cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            # A file that was already there keeps its mode through O_CREAT: narrow it first.
            os.fchmod(f.fileno(), 0o600)
            f.write(self.key_pem)
        ca.write_text(self.ca_pem)
        return cert, key, ca


def client_certificate(secret: str) -> ClientCertificate:
    """A fresh client certificate from the CA of the cluster secret ``secret``.

    Every call makes a new key pair; each certificate stays valid until the cluster's secret
    changes (it cannot be revoked otherwise). As Rust's
    ``pulsing::http::security::client_certificate``::

        pulsing.client_certificate(os.environ["PULSING_SECRET"]).write(".")

    Raises:
        ValueError: ``secret`` is empty or only whitespace.
    """
    _check_secret("secret", secret)
    cert_pem, key_pem, ca_pem = _native.client_certificate(secret)
    return ClientCertificate(cert_pem=cert_pem, key_pem=key_pem, ca_pem=ca_pem)


def _check_secret(what: str, value: str) -> str:
    """``value`` if it is a usable secret or token (a non-blank ``str``); else the error the core
    would give at build (``PulsingError``), raised early as ``ValueError``/``TypeError``, without
    the value in the message."""
    if not isinstance(value, str):
        raise TypeError(f"a {what} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"a {what} may not be empty")
    return value
