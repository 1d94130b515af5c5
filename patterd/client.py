"""The one typed async client of the control API, shared by ``patterctl`` and the TUI."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ValidationError

from patter_core.events import Event, parse_event
from patterd.api import models as m
from patterd.paths import default_socket_path, too_long_for_a_socket
from patterd.runtime import LiveCall

__all__ = [
    "ApiError",
    "CallHasEnded",
    "ClientError",
    "DaemonUnreachable",
    "LiveCall",
    "NotFound",
    "PatterClient",
    "SocketPermissionDenied",
    "StreamItem",
    "m",
]

T = TypeVar("T", bound=BaseModel)
log = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 30.0


class ClientError(Exception):
    """Base of everything the client raises."""


class DaemonUnreachable(ClientError):
    """No daemon is listening (socket missing or connection refused)."""


class SocketPermissionDenied(ClientError):
    """The socket exists but this user may not use it."""


class ApiError(ClientError):
    def __init__(self, status: int, code: str, message: str, details: list[str]) -> None:
        text = message + ("".join(f"\n  {d}" for d in details) if details else "")
        super().__init__(text)
        self.status = status
        self.code = code
        self.details = details


class NotFound(ApiError):
    """The call or credential does not exist."""


class CallHasEnded(ApiError):
    """A live-call operation on a call that has ended (409 ``call_ended``)."""


class StreamItem(BaseModel):
    """One item of the events stream: an event at ``pos``, ``missed`` events lost before it,
    or (``restarted``) the daemon restarted and the stream goes on from its start."""

    pos: int
    event: Event | None = None
    missed: int = 0
    restarted: bool = False


def _permission_denied(socket_path: Path, what: Path) -> SocketPermissionDenied:
    # The daemon makes its socket 0600 in a 0700 folder: only its own user (or root) gets in.
    return SocketPermissionDenied(
        f"permission denied on {what}: the control socket {socket_path} is only open to the"
        " user patterd runs as; run patterctl as that user (or point --socket elsewhere)"
    )


def _connect_error(socket_path: Path, exc: BaseException) -> ClientError:
    os_error = getattr(exc, "os_error", None) or exc.__cause__ or exc
    code = getattr(os_error, "errno", None)
    if isinstance(os_error, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return _permission_denied(socket_path, socket_path)
    if code in (None, errno.ECONNREFUSED, errno.ENOENT):
        return DaemonUnreachable(f"patterd is not running (nothing listening on {socket_path})")
    reason = getattr(os_error, "strerror", None) or str(os_error)
    return DaemonUnreachable(f"cannot connect to the control socket {socket_path}: {reason}")


def probe_socket(socket_path: Path) -> None:
    """Raise a ClientError saying why ``socket_path`` cannot be a daemon's socket, if it cannot."""
    if (why := too_long_for_a_socket(socket_path)) is not None:
        raise DaemonUnreachable(why)
    try:
        mode = socket_path.stat().st_mode
    except FileNotFoundError:
        raise DaemonUnreachable(
            f"patterd is not running (no control socket at {socket_path})"
        ) from None
    except PermissionError:
        raise _permission_denied(socket_path, socket_path.parent) from None
    except NotADirectoryError:
        raise DaemonUnreachable(
            f"patterd is not running (no control socket at {socket_path}:"
            " part of that path is a file, not a folder)"
        ) from None
    except OSError as exc:
        raise DaemonUnreachable(
            f"cannot use the control socket path {socket_path}: {exc.strerror or exc}"
        ) from None
    if not stat.S_ISSOCK(mode):
        raise DaemonUnreachable(
            f"patterd is not running ({socket_path} exists but is not a socket)"
        )


class PatterClient:
    def __init__(self, socket_path: Path | None = None) -> None:
        self.socket_path = socket_path or default_socket_path()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PatterClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _check_socket(self) -> None:
        probe_socket(self.socket_path)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        self._check_socket()
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["data"] = body.model_dump_json(exclude_none=True)
            kwargs["headers"] = {"Content-Type": "application/json"}
        if params:
            kwargs["params"] = {k: str(v) for k, v in params.items() if v is not None}
        try:
            async with self._http().request(method, "http://patterd" + path, **kwargs) as resp:
                text = await resp.text()
                status = resp.status
                ctype = resp.content_type
        except aiohttp.ClientConnectorError as exc:
            raise _connect_error(self.socket_path, exc) from None
        except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
            raise DaemonUnreachable(f"lost the connection to patterd: {exc}") from None
        except OSError as exc:  # e.g. the path changed under us between probe and connect
            raise _connect_error(self.socket_path, exc) from None
        except TimeoutError:
            raise DaemonUnreachable(
                f"patterd did not answer within {REQUEST_TIMEOUT_S:.0f}s"
            ) from None
        data: Any = text
        if ctype == "application/json" and text:
            data = json.loads(text)
        if status >= 400:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            code = str(err.get("code", "http_error"))
            cls = NotFound if status == 404 else CallHasEnded if code == "call_ended" else ApiError
            raise cls(
                status,
                code,
                str(err.get("message", f"HTTP {status}")),
                [str(d) for d in err.get("details", [])],
            )
        return status, data

    async def _get(self, path: str, model: type[T], params: dict[str, Any] | None = None) -> T:
        _, data = await self._request("GET", path, params=params)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ClientError(f"unexpected answer from patterd on {path}: {exc}") from None

    async def _post(self, path: str, model: type[T], body: BaseModel | None = None) -> T:
        _, data = await self._request("POST", path, body=body)
        return model.model_validate(data)

    async def status(self) -> m.Status:
        return await self._get("/v1/status", m.Status)

    async def version(self) -> m.VersionInfo:
        return await self._get("/v1/version", m.VersionInfo)

    async def live_calls(self) -> list[LiveCall]:
        return (await self._get("/v1/calls/live", m.LiveCalls)).calls

    async def calls(self, limit: int = 50, offset: int = 0, **filters: Any) -> m.CallPage:
        return await self._get(
            "/v1/calls", m.CallPage, {"limit": limit, "offset": offset, **filters}
        )

    async def call(self, call_id: str) -> m.CallDetail:
        return await self._get(f"/v1/calls/{_seg(call_id)}", m.CallDetail)

    async def totals(self, **filters: Any) -> m.DayTotals:
        return await self._get("/v1/totals", m.DayTotals, filters)

    async def place_call(
        self, to: str, agent: str | None = None, first_message: str | None = None
    ) -> str:
        body = m.PlaceCallRequest(to=to, agent=agent, first_message=first_message)
        return (await self._post("/v1/calls", m.PlacedCall, body)).call_id

    async def hangup(self, call_id: str) -> None:
        await self._post(f"/v1/calls/{_seg(call_id)}/hangup", m.Ok)

    async def transfer(self, call_id: str, to: str) -> None:
        await self._post(f"/v1/calls/{_seg(call_id)}/transfer", m.Ok, m.TransferRequest(to=to))

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        await self._post(f"/v1/calls/{_seg(call_id)}/dtmf", m.Ok, m.DtmfRequest(digits=digits))

    async def credentials(self) -> list[m.CredentialName]:
        return (await self._get("/v1/credentials", m.CredentialList)).credentials

    async def set_credential(self, name: str, value: str) -> None:
        await self._request(
            "PUT", f"/v1/credentials/{_seg(name)}", body=m.CredentialSetRequest(value=value)
        )

    async def delete_credential(self, name: str) -> None:
        await self._request("DELETE", f"/v1/credentials/{_seg(name)}")

    async def reload(self) -> m.Reloaded:
        return await self._post("/v1/config/reload", m.Reloaded)

    async def rebuild_store(self) -> m.Rebuilt:
        return await self._post("/v1/store/rebuild", m.Rebuilt)

    async def metrics(self) -> str:
        _, text = await self._request("GET", "/v1/metrics")
        return str(text)

    async def openapi(self) -> dict[str, Any]:
        _, data = await self._request("GET", "/v1/openapi.json")
        return dict(data)

    async def events(
        self,
        call_id: str | None = None,
        since: int | None = None,
        *,
        reconnect_for_s: float = 30.0,
    ) -> AsyncIterator[StreamItem]:
        """Live events; on a dropped connection, reconnects with ``since`` = last seen position.

        Raises DaemonUnreachable at once if the first connection fails, and after
        ``reconnect_for_s`` without a connection once it has been up. If the daemon
        restarted meanwhile (its positions start again at 1), yields an item with
        ``restarted`` and goes on from the new daemon's first event.
        """
        position = since
        instance: str | None = None
        loop = asyncio.get_running_loop()
        connected = False
        down_since: float | None = None
        delay = 0.1
        while True:
            try:
                if instance is None:
                    status = await self.status()
                    instance = status.instance or None
                    if position is None:
                        # Start "now", but as a position: a reconnect then misses nothing.
                        position = status.event_position
                params: dict[str, str] = {}
                if position is not None:
                    params["since"] = str(position)
                if instance is not None:
                    params["instance"] = instance
                if call_id is not None:
                    params["call_id"] = call_id
                self._check_socket()
                async with self._http().ws_connect(
                    "http://patterd/v1/events", params=params, heartbeat=20.0
                ) as ws:
                    connected = True
                    down_since, delay = None, 0.1
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        frame = m.EventFrame.model_validate_json(msg.data)
                        position = frame.pos
                        if frame.kind == "reset":
                            instance = frame.instance
                            yield StreamItem(pos=frame.pos, restarted=True)
                        elif frame.kind == "gap":
                            yield StreamItem(pos=frame.pos, missed=frame.missed)
                        elif frame.event is not None:
                            event = _known_event(frame.event)
                            if event is not None:
                                yield StreamItem(pos=frame.pos, event=event)
            except aiohttp.WSServerHandshakeError as exc:
                raise ApiError(exc.status, "handshake", exc.message, []) from None
            except SocketPermissionDenied:
                raise
            except (aiohttp.ClientConnectorError, aiohttp.ClientOSError, DaemonUnreachable) as exc:
                err: ClientError | aiohttp.ClientError = exc
                if isinstance(exc, aiohttp.ClientConnectorError):
                    err = _connect_error(self.socket_path, exc)
                    if isinstance(err, SocketPermissionDenied):
                        raise err from None
                if not connected:
                    raise (
                        err
                        if isinstance(err, DaemonUnreachable)
                        else DaemonUnreachable(f"patterd is not running: {err}")
                    ) from None
            now = loop.time()
            down_since = down_since if down_since is not None else now
            if now - down_since >= reconnect_for_s:
                raise DaemonUnreachable(
                    f"lost patterd at {self.socket_path} and could not reconnect"
                    f" within {reconnect_for_s:.0f}s"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _known_event(data: dict[str, Any]) -> Event | None:
    """The event, or None for a type this client does not know (a newer daemon): skipped."""
    try:
        return parse_event(data)
    except ValidationError:
        log.debug("skipping event of unknown type %r", data.get("type"))
        return None


def _seg(value: str) -> str:
    if not value:
        raise ValueError("an empty call id or credential name names nothing")
    return quote(value, safe="")
