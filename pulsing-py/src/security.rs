//! [`client_certificate`]: a client certificate from the cluster CA, for HTTP clients of a node with
//! a cluster secret (`docs/security.md`, "HTTP clients"). `pulsing/_security.py` wraps it in the
//! Python `ClientCertificate`.

use pyo3::prelude::*;

/// A fresh client certificate from the CA that `secret` derives: `(cert_pem, key_pem, ca_pem)`, as
/// `pulsing::http::security::client_certificate` makes it. Runs with the GIL released (a key pair
/// is generated and signed: a few milliseconds).
///
/// # Errors
///
/// `PulsingError` (kind `config`) for an empty secret.
#[pyfunction]
pub(crate) fn client_certificate(
    py: Python<'_>,
    secret: &str,
) -> PyResult<(String, String, String)> {
    let made = py.detach(|| pulsing::http::security::client_certificate(secret));
    let cert = made.map_err(crate::errors::to_py_err)?;
    Ok((cert.cert_pem, cert.key_pem, cert.ca_pem))
}
