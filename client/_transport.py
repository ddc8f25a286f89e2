"""The channel (plaintext or TLS), per-call deadlines, request headers and retries.

Only calls that are safe to repeat are retried: reads, and ApplyBundle requests that
carry an idempotency key (the server answers a repeat with the first result).

An API token travels as the `authorization: Bearer <token>` header of every call, as
plain metadata rather than gRPC call credentials, which gRPC refuses on a plaintext
channel: the same header then works over TLS and to a plaintext loopback server.
"""

from __future__ import annotations

import ipaddress
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from metareg.v1 import metadata_pb2_grpc, schema_registry_pb2_grpc

from ._errors import from_grpc_error

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Bundles and validations start a new request before one grows past this."""
"""The server accepts 64 MiB messages: 1000 updates with 4096-d embeddings fit easily."""
ERROR_DETAIL_BYTES = 4 * 1024 * 1024
"""How many bytes of error details to ask for (the server's maximum), so that a rejected
bundle reports every violation instead of the first ~7 KB."""
MAX_METADATA_BYTES = 16 * 1024 * 1024
"""Our limit for received metadata: the details above travel base64-encoded in trailers."""
DETAIL_BYTES_HEADER = "metareg-error-detail-bytes"
AUTHORIZATION_HEADER = "authorization"
DEFAULT_TIMEOUT = 30.0

TOKEN_VARIABLE = "METAREG_TOKEN"
TLS_VARIABLE = "METAREG_TLS"
CA_CERT_VARIABLE = "METAREG_CA_CERT"
CLIENT_CERT_VARIABLE = "METAREG_CLIENT_CERT"
CLIENT_KEY_VARIABLE = "METAREG_CLIENT_KEY"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

PemSource = str | os.PathLike[str] | bytes
"""A certificate or key: a file path (str or Path), or the PEM contents themselves (bytes)."""

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    # Reconnect soon after a failure, so that a retry can find a restarted server.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
)

READ_RETRY_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# The server answers ABORTED when a concurrent write touched the same records; with an
# idempotency key a bundle can simply be sent again.
IDEMPOTENT_WRITE_RETRY_CODES = READ_RETRY_CODES | {grpc.StatusCode.ABORTED}

Response = TypeVar("Response")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter between attempts of a retryable call."""

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


class InsecureTokenWarning(UserWarning):
    """A token is sent without TLS to a server that is not on this machine."""


def channel_credentials(
    *,
    tls: bool = False,
    ca_cert: PemSource | None = None,
    client_cert: PemSource | None = None,
    client_key: PemSource | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials, or None for a plaintext channel; a certificate implies TLS.

    Without `ca_cert` the server's certificate is checked against gRPC's default roots
    ($GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, else the system's trust store). A file that
    cannot be read or holds no PEM of the right kind is a ValueError naming it.
    """
    if (client_cert is None) != (client_key is None):
        raise ValueError(
            "a client certificate and its private key go together: give both or neither"
        )
    if not (tls or ca_cert is not None or client_cert is not None):
        return None
    roots = None if ca_cert is None else _read_pem(ca_cert, "CA certificate", _CERTIFICATE)
    chain = key = None
    if client_cert is not None and client_key is not None:
        chain = _read_pem(client_cert, "client certificate", _CERTIFICATE)
        key = _read_pem(client_key, "client key", _PRIVATE_KEY)
        if _ENCRYPTED_KEY in key:
            raise ValueError(f"the {_origin(client_key, 'client key')} is encrypted: "
                             "gRPC needs an unencrypted key")  # fmt: skip
    return grpc.ssl_channel_credentials(
        root_certificates=roots, private_key=key, certificate_chain=chain
    )


def security_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """The token and TLS arguments of Client (token, tls, ca_cert, client_cert and
    client_key) from the environment; empty variables count as unset."""
    flag = environ.get(TLS_VARIABLE, "").strip().lower()
    if flag not in _TRUE + _FALSE:
        raise ValueError(f"{TLS_VARIABLE}={flag!r} is not a boolean: use 1/true or 0/false")
    return {
        "token": environ.get(TOKEN_VARIABLE) or None,
        "tls": flag in _TRUE,
        "ca_cert": environ.get(CA_CERT_VARIABLE) or None,
        "client_cert": environ.get(CLIENT_CERT_VARIABLE) or None,
        "client_key": environ.get(CLIENT_KEY_VARIABLE) or None,
    }


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The authorization header for `token` (none for None or ""). The token itself never
    appears in an error message."""
    if not token:
        return ()
    if not all(33 <= ord(char) <= 126 for char in token):
        raise ValueError("the token must be printable ASCII without spaces (it is not shown)")
    return ((AUTHORIZATION_HEADER, f"Bearer {token}"),)


def warn_if_token_in_clear(address: str, *, stacklevel: int = 2) -> None:
    """Warn (InsecureTokenWarning) that a token will cross the network unencrypted,
    unless `address` is this machine (loopback or a Unix socket)."""
    if not is_local_address(address):
        warnings.warn(
            f"the API token is sent without TLS to {address}: anyone on the network path "
            "can read and reuse it; connect with tls=True (--tls)",
            InsecureTokenWarning,
            stacklevel=stacklevel + 1,
        )


def is_local_address(address: str) -> bool:
    """Whether a gRPC target is on this machine: a Unix socket, localhost or a loopback
    IP. Names are not resolved: any other name counts as the network."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    target = address
    if target.startswith("dns://"):  # dns://[authority]/host:port
        target = target[len("dns://") :].partition("/")[2]
    elif target.startswith(("dns:", "ipv4:", "ipv6:")):
        target = target.partition(":")[2]
    return all(_is_local_host(one) for one in target.split(","))  # ipv4:a:1,b:2 lists several


def check_address(address: str) -> None:
    """ValueError naming `address` if one of its ports is not a port number 1..65535 (gRPC
    would quietly connect somewhere else: 99999 wraps around to 34463)."""
    if address.startswith(("unix:", "unix-abstract:")):
        return
    target = address
    if target.startswith("dns://"):
        target = target[len("dns://") :].partition("/")[2]
    elif target.startswith(("dns:", "ipv4:", "ipv6:")):
        target = target.partition(":")[2]
    for one in target.split(","):
        port = _port_of(one)
        if port is not None and port.isdigit() and not 1 <= int(port) <= 65535:
            raise ValueError(
                f"bad server address {address!r}: port {port} is not a port number "
                "(use host:port with a port 1..65535)"
            )


def _port_of(target: str) -> str | None:
    """The port part of host:port or [ipv6]:port; None without one (a bare IPv6 address)."""
    if target.startswith("["):
        rest = target.partition("]")[2]
        return rest[1:] if rest.startswith(":") else None
    return target.rpartition(":")[2] if target.count(":") == 1 else None


def _is_local_host(target: str) -> bool:
    if target.startswith("["):
        host = target[1:].partition("]")[0]
    else:
        host = target.rpartition(":")[0] if target.count(":") == 1 else target
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = b"PRIVATE KEY-----"
_ENCRYPTED_KEY = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def _read_pem(source: PemSource, what: str, marker: bytes) -> bytes:
    if isinstance(source, bytes):
        pem = source
    elif isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        raise ValueError(f"the {what} looks like PEM contents: pass them as bytes "
                         "(a str is a file path)")  # fmt: skip
    else:
        try:
            pem = Path(source).read_bytes()
        except OSError as error:
            raise ValueError(
                f"cannot read the {_origin(source, what)}: {error.strerror or error}"
            ) from None
    if marker not in pem:
        kind = "a private key" if marker is _PRIVATE_KEY else "a certificate"
        raise ValueError(f"the {_origin(source, what)} is not PEM holding {kind}")
    return pem


def _origin(source: PemSource, what: str) -> str:
    return f"{what} given as bytes" if isinstance(source, bytes) else f"{what} {os.fspath(source)}"


class Transport:
    """One channel and its stubs; every call gets a deadline, headers and typed errors."""

    def __init__(
        self,
        address: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
        token: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        interceptors: Sequence[Any] = (),
    ) -> None:
        check_address(address)
        self.address = address
        self.timeout = timeout
        self.retry = retry
        self.metadata: tuple[tuple[str, str], ...] = (
            *(metadata or ()),
            *token_metadata(token),
            (DETAIL_BYTES_HEADER, str(ERROR_DETAIL_BYTES)),
        )
        channel = (
            grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
            if credentials is not None
            else grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        )
        self.channel: grpc.Channel = channel
        intercepted = grpc.intercept_channel(channel, *interceptors) if interceptors else channel
        self.registry = schema_registry_pb2_grpc.SchemaRegistryStub(intercepted)
        self.metadata_service = metadata_pb2_grpc.MetadataServiceStub(intercepted)

    def call(
        self,
        method: Callable[..., Response],
        request: Any,
        *,
        retry_on: frozenset[grpc.StatusCode] = frozenset(),
        timeout: float | None = None,
    ) -> Response:
        """Invoke a unary method; retry the status codes in `retry_on` with backoff.

        A call the server refused at capacity (RESOURCE_EXHAUSTED with a RetryInfo) is
        retried whatever `retry_on` says, after at least the delay the server asked for:
        it was refused before it ran, so repeating it is safe for any call.

        Each attempt has its own deadline of `timeout` seconds. A failure raises the
        typed CallError for its status code.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self.metadata)
            except grpc.RpcError as error:
                code = error.code() if callable(getattr(error, "code", None)) else None
                failure = from_grpc_error(error)
                wait = self.retry.backoff(attempt)
                retry_after = failure.retry_after
                if retry_after is not None:
                    wait = max(wait, retry_after)
                elif code not in retry_on:
                    raise failure from error
                if attempt >= self.retry.max_attempts:
                    raise failure from error
            time.sleep(wait)

    def close(self) -> None:
        self.channel.close()
