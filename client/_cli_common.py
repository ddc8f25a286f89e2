"""Shared pieces of the `metareg` client commands: connection options and exit codes.

Exit codes: 0 success, 1 rejected input (invalid records or schema, or any other error
the server reports), 2 usage (also a query filter or --order-by that the server
rejects: it is part of the command line), 3 server unreachable. Errors go to stderr.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

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
from ._transport import DEFAULT_TIMEOUT

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
MAX_SHOWN_VIOLATIONS = 20

P = ParamSpec("P")
R = TypeVar("R")


def address_options(command: Callable[P, R]) -> Callable[P, R]:
    """Add --address (also $METAREG_ADDRESS) and --timeout to a command."""
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


def connect(address: str, timeout: float) -> Client:
    return Client(address, timeout=timeout)


def echo_error(message: str) -> None:
    click.echo(message, err=True)


def fail(message: str, code: int = EXIT_REJECTED) -> NoReturn:
    echo_error(f"error: {message}")
    sys.exit(code)


def _describe(error: CallError) -> list[str]:
    lines = [f"error: {error}"]
    shown = error.violations[:MAX_SHOWN_VIOLATIONS]
    lines += [f"  {v}" for v in shown]
    if len(error.violations) > len(shown):
        lines.append(f"  … and {len(error.violations) - len(shown)} more")
    if error.impact is not None:
        lines += [f"  {line}" for line in error.impact.describe()]
    if isinstance(error, FailedPreconditionError) and error.impact is not None:
        lines.append("  re-run with --force to apply it anyway (the invalid values are removed)")
    return lines


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn client exceptions into a message on stderr and the documented exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (UnavailableError, DeadlineExceededError) as error:
            address = kwargs.get("address", DEFAULT_ADDRESS)
            fail(f"cannot reach a metareg server at {address}: {error}", EXIT_UNREACHABLE)
        except BundleError as error:
            if isinstance(error.cause, UnavailableError | DeadlineExceededError):
                fail(error.message, EXIT_UNREACHABLE)
            fail(error.message)
        except CallError as error:
            for line in _describe(error):
                echo_error(line)
            sys.exit(EXIT_REJECTED)
        except MetaregError as error:
            fail(error.message)

    return run
