"""Helpers of the commands that run on the server's side (`serve`, `db`, `auth`): settings
and databases an operator got wrong become one line on stderr and exit 1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from metareg.server.app import Config


def operator_config(**overrides: str | int | bool | None) -> Config:
    """The server's settings; one that is out of range or not a number is a one-line error."""
    from metareg.server.app import Config

    try:
        return Config.from_env(**overrides)
    except ValueError as error:
        fail_operator(str(error))


def fail_operator(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@contextmanager
def operator_errors() -> Iterator[None]:
    """Settings, URLs and databases an operator got wrong: one line each, no traceback."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from metareg.server.domain.errors import DatabaseNotAtHead

    try:
        yield
    except (ArgumentError, NoSuchModuleError) as error:
        fail_operator(f"bad database URL: {error}")
    except DBAPIError as error:
        reason = str(error.orig).strip() or type(error.orig).__name__
        fail_operator(f"cannot use the database: {reason}")
    except CommandError as error:
        fail_operator(f"migration: {error}")
    except DatabaseNotAtHead as error:
        fail_operator(error.message)
    except OSError as error:
        fail_operator(str(error))
