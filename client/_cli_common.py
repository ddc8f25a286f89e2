"""Shared pieces of the `metareg` client commands: connection options and exit codes.

Exit codes: 0 success, 1 rejected input (invalid records or schema, or any other error
the server reports), 2 usage (also a query filter or --order-by that the server
rejects: it is part of the command line, and so is a certificate file or token that
cannot be used), 3 server unreachable (with a hint when TLS may be why). Errors go to
stderr.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from ._client import ADDRESS_VARIABLE, DEFAULT_ADDRESS, Client
from ._errors import (
    BundleError,
    CallError,
    DeadlineExceededError,
    FailedPreconditionError,
    MetaregError,
    UnavailableError,
)
from ._transport import (
    CA_CERT_VARIABLE,
    CLIENT_CERT_VARIABLE,
    CLIENT_KEY_VARIABLE,
    DEFAULT_TIMEOUT,
    TLS_VARIABLE,
    TOKEN_VARIABLE,
    InsecureTokenWarning,
)

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
MAX_SHOWN_VIOLATIONS = 20
# Where the connection options wait for `connect` (they are not command parameters).
_CONNECTION = "metareg.connection"

P = ParamSpec("P")
R = TypeVar("R")


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if param.name:
        ctx.meta.setdefault(_CONNECTION, {})[param.name] = value
    return value


_CONNECTION_OPTIONS = (
    click.option(
        "--tls",
        is_flag=True,
        envvar=TLS_VARIABLE,
        expose_value=False,
        callback=_remember,
        help=f"Connect with TLS (also ${TLS_VARIABLE}=1); implied by --ca-cert and --client-cert.",
    ),
    click.option(
        "--ca-cert",
        metavar="PEM",
        envvar=CA_CERT_VARIABLE,
        expose_value=False,
        callback=_remember,
        help="CA certificate file that signed the server's certificate (also "
        f"${CA_CERT_VARIABLE}) [default: the system's roots].",
    ),
    click.option(
        "--client-cert",
        metavar="PEM",
        envvar=CLIENT_CERT_VARIABLE,
        expose_value=False,
        callback=_remember,
        help=f"Client certificate file, for a server that requires one (mTLS; also "
        f"${CLIENT_CERT_VARIABLE}).",
    ),
    click.option(
        "--client-key",
        metavar="PEM",
        envvar=CLIENT_KEY_VARIABLE,
        expose_value=False,
        callback=_remember,
        help=f"The client certificate's private key file (also ${CLIENT_KEY_VARIABLE}).",
    ),
    click.option(
        "--token",
        metavar="TOKEN",
        envvar=TOKEN_VARIABLE,
        expose_value=False,
        callback=_remember,
        help=f"API token, sent as 'authorization: Bearer'. Prefer ${TOKEN_VARIABLE}: a "
        "flag shows in the process list.",
    ),
)


def address_options(command: Callable[P, R]) -> Callable[P, R]:
    """Add --address (also $METAREG_ADDRESS), --timeout and the TLS and token options
    (read by `connect`) to a command."""
    for option in reversed(_CONNECTION_OPTIONS):
        command = option(command)
    command = click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Deadline of each call, in seconds.",
    )(command)
    return click.option(
        "--address",
        envvar=ADDRESS_VARIABLE,
        default=DEFAULT_ADDRESS,
        show_default=True,
        help=f"Server address host:port (also ${ADDRESS_VARIABLE}).",
    )(command)


def _connection_settings() -> dict[str, Any]:
    context = click.get_current_context(silent=True)
    settings = dict(context.meta.get(_CONNECTION, {})) if context else {}
    return {name: value for name, value in settings.items() if value not in (None, "")}


def connect(address: str, timeout: float) -> Client:
    """A client per the command's options; a certificate file or token that cannot be
    used is a one-line usage error, a token sent in clear a one-line warning."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InsecureTokenWarning)
            client = Client(address, timeout=timeout, **_connection_settings())
    except ValueError as error:
        fail(str(error), EXIT_USAGE)
    for warning in caught:
        echo_error(f"warning: {warning.message}")
    return client


def echo_error(message: str) -> None:
    click.echo(message, err=True)


def fail(message: str, code: int = EXIT_REJECTED) -> NoReturn:
    echo_error(f"error: {message}")
    sys.exit(code)


def _describe(error: CallError) -> list[str]:
    lines = [f"error: {error}"]
    # A lone violation that only repeats the message adds nothing to read.
    violations = [v for v in error.violations if v.description != error.message]
    shown = violations[:MAX_SHOWN_VIOLATIONS]
    lines += [f"  {v}" for v in shown]
    if len(violations) > len(shown):
        lines.append(f"  … and {len(violations) - len(shown)} more")
    if error.impact is not None:
        lines += [f"  {line}" for line in error.impact.describe()]
    if isinstance(error, FailedPreconditionError) and error.impact is not None:
        kept = (", records that lack a required key stay as they are"
                if error.impact.missing_records_by_key else "")  # fmt: skip
        lines.append(
            f"  re-run with --force to apply it anyway (the invalid values are removed{kept})"
        )
    return lines


def unreachable(message: str, error: CallError) -> NoReturn:
    echo_error(f"error: {message}")
    hint = _tls_hint(error)
    if hint:
        echo_error(f"  hint: {hint}")
    sys.exit(EXIT_UNREACHABLE)


def _tls_hint(error: CallError) -> str | None:
    """Why the server may be unreachable when something does listen there: TLS on one
    side only, or certificates the other side does not accept."""
    text = error.message
    if isinstance(error, DeadlineExceededError) or any(
        sign in text for sign in ("Connection refused", "DNS resolution failed")
    ):
        return None  # nothing listens there, or no such host: TLS is not the question
    settings = _connection_settings()
    if not settings.get("tls") and not settings.keys() & {"ca_cert", "client_cert"}:
        return "if the server uses TLS, connect with --tls (and --ca-cert PEM for a private CA)"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            "the TLS handshake failed: the server's certificate is not signed by a CA this "
            "client trusts; pass the CA that signed it with --ca-cert PEM"
        )
    return (
        "the TLS connection failed: check that the server uses TLS, that --ca-cert names "
        "the CA of its certificate and, if it requires client certificates (mTLS), "
        "--client-cert and --client-key"
    )


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn client exceptions into a message on stderr and the documented exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (UnavailableError, DeadlineExceededError) as error:
            address = kwargs.get("address", DEFAULT_ADDRESS)
            unreachable(f"cannot reach a metareg server at {address}: {error}", error)
        except BundleError as error:
            if isinstance(error.cause, UnavailableError | DeadlineExceededError):
                unreachable(error.message, error.cause)
            fail(error.message)
        except CallError as error:
            for line in _describe(error):
                echo_error(line)
            sys.exit(EXIT_REJECTED)
        except MetaregError as error:
            fail(error.message)

    return run
