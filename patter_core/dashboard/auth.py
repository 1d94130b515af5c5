"""Who may see the dashboard: a bearer token or a session cookie from the login form.

The token is compared in constant time and never echoed, logged or put in a
URL; sessions are random ids held in memory, so a restart logs everyone out.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict

from aiohttp import web

log = logging.getLogger(__name__)

COOKIE = "patter_dashboard"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 256


def is_loopback(host: str) -> bool:
    """True for binds only this machine can reach (``localhost``, 127/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8000`` → ``::1``)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def check_bind(host: str, auth: DashboardAuth) -> None:
    """Refuse an open dashboard on a reachable address; warn whenever it is open."""
    if auth.enabled:
        return
    if not is_loopback(host) and not auth.allow_open:
        raise ValueError(
            f"the dashboard would be open to anyone who can reach {host}: set "
            "dashboard_token=..., bind to 127.0.0.1, pass dashboard=False, or opt in "
            "with dashboard_allow_open=True"
        )
    log.warning(
        "dashboard is open: no dashboard_token set, anyone who can reach %s can see calls", host
    )


class DashboardAuth:
    def __init__(self, token: str, *, allow_open: bool = False) -> None:
        self._token = token.encode()
        self._sessions: OrderedDict[str, float] = OrderedDict()
        self.allow_open = allow_open

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token)

    def new_session(self) -> str:
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = time.monotonic() + SESSION_TTL_S
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid

    def end_session(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def _session_ok(self, sid: str) -> bool:
        expires = self._sessions.get(sid)
        if expires is None:
            return False
        if expires < time.monotonic():
            self._sessions.pop(sid, None)
            return False
        return True

    def allowed(self, request: web.Request) -> bool:
        if not self.enabled:
            # Open on loopback: still only for requests addressed to loopback, so a
            # tunnel's public host or a DNS-rebinding page cannot read the calls.
            return self.allow_open or is_loopback(host_of(request.host))
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value and self.token_matches(value.strip()):
            return True
        sid = request.cookies.get(COOKIE, "")
        return bool(sid) and self._session_ok(sid)

    def set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(
            COOKIE,
            sid,
            path="/dashboard",
            httponly=True,
            samesite="Strict",
            max_age=SESSION_TTL_S,
        )
