"""The caller of the RPC being served: set by the server's access interceptor for the
duration of each call, read by the servicers for audit events and listing filters."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from ..domain.access import ANONYMOUS, ApiKey, Caller


@dataclass(frozen=True, slots=True)
class CallIdentity:
    caller: Caller
    key: ApiKey | None  # None: an anonymous call (no key exists)


_CURRENT: ContextVar[CallIdentity | None] = ContextVar("metareg_call_identity", default=None)


def current(rpc: str) -> CallIdentity:
    """The identity of the call being served (anonymous outside the interceptor)."""
    identity = _CURRENT.get()
    return identity or CallIdentity(Caller(ANONYMOUS, "", rpc), None)


def serving(identity: CallIdentity) -> object:
    """Make `identity` current; pass the result to `done` when the call ends."""
    return _CURRENT.set(identity)


def done(token: object) -> None:
    _CURRENT.reset(token)  # type: ignore[arg-type]
