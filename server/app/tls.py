"""TLS for the server's port: check the PEM files at start-up, build the port's credentials.

`--tls-cert` and `--tls-key` make the port TLS; `--tls-client-ca` also requires every
client to present a certificate signed by that CA (mTLS). Without them it is plaintext.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from .config import Config

_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"
_ENCRYPTED_KEY = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def log_marker(config: Config) -> str:
    """What the start-up line shows after the address: " (TLS)", " (mTLS)" or nothing."""
    if not config.tls_cert:
        return ""  # plaintext: the line stays as it always was
    return " (mTLS)" if config.tls_client_ca else " (TLS)"


def check_files(config: Config) -> None:
    """ValueError, in one line naming the setting and its file, unless the TLS settings
    are absent or make a working set-up: the certificate and key together, readable,
    PEM, matching, and a client CA only on top of them."""
    cert, key, client_ca = config.tls_cert, config.tls_key, config.tls_client_ca
    if bool(cert) != bool(key):
        given, missing = ("TLS_CERT", "TLS_KEY") if cert else ("TLS_KEY", "TLS_CERT")
        raise ValueError(
            f"METAREG_{given} is set but METAREG_{missing} is not: TLS needs both the "
            "certificate (--tls-cert) and its private key (--tls-key)"
        )
    if client_ca and not cert:
        raise ValueError(
            "METAREG_TLS_CLIENT_CA requires METAREG_TLS_CERT and METAREG_TLS_KEY: "
            "client certificates (mTLS) are checked on a TLS port"
        )
    if not cert:
        return
    _read("TLS_CERT", cert, _CERTIFICATE, "a PEM certificate")
    key_pem = _read("TLS_KEY", key, _PRIVATE_KEY, "a PEM private key")
    if _ENCRYPTED_KEY in key_pem:
        raise ValueError(f"METAREG_TLS_KEY={key!r} is encrypted: gRPC needs an unencrypted key")
    try:  # the standard library checks what gRPC would only report as a failed bind
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as error:
        raise ValueError(
            f"METAREG_TLS_CERT={cert!r} and METAREG_TLS_KEY={key!r} do not make a "
            f"certificate and its private key: {_reason(error)}"
        ) from None
    if client_ca:
        _read("TLS_CLIENT_CA", client_ca, _CERTIFICATE, "PEM CA certificates")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=client_ca)
        except ssl.SSLError as error:
            raise ValueError(
                f"METAREG_TLS_CLIENT_CA={client_ca!r} does not load: {_reason(error)}"
            ) from None


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """The credentials of a TLS (or mTLS) port, or None for a plaintext one."""
    if not config.tls_cert:
        return None
    key_pair = (Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())
    if not config.tls_client_ca:
        return grpc.ssl_server_credentials([key_pair])
    return grpc.ssl_server_credentials(
        [key_pair],
        root_certificates=Path(config.tls_client_ca).read_bytes(),
        require_client_auth=True,
    )


def _read(name: str, path: str, marker: bytes, expected: str) -> bytes:
    try:
        pem = Path(path).read_bytes()
    except OSError as error:
        raise ValueError(
            f"METAREG_{name}={path!r} cannot be read: {error.strerror or error}"
        ) from None
    if marker not in pem:
        raise ValueError(f"METAREG_{name}={path!r} is not {expected}")
    return pem


def _no_password() -> bytes:
    # Never prompt on the terminal: an encrypted key fails instead.
    return b""


def _reason(error: ssl.SSLError) -> str:
    """OpenSSL's reason ("KEY_VALUES_MISMATCH") in words; it gives none for bad PEM."""
    reason: str | None = error.reason
    return reason.lower().replace("_", " ") if reason else "not a valid PEM file"
