"""Tools the agent can call: Python handlers, webhooks, and the two system tools.

A tool never crashes a call: a handler that raises, a webhook that fails or
anything that outlives its timeout becomes ``{"error": ...}`` for the brain.
Webhook targets are resolved first and refused when any address is private,
loopback, link-local or otherwise not public, then the request is pinned to
the vetted addresses, so a prompt cannot steer the agent into the operator's
network (nor can a DNS answer that changes between check and connect).
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import logging
import re
import socket
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from patter_core.brain import ToolSpec

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024


class ToolContext(TypedDict):
    call_id: str
    caller: str
    callee: str


Handler = Callable[..., Any]


class ToolError(Exception):
    """A tool could not run; the message goes back to the brain."""


@dataclass(slots=True)
class Tool:
    """A function the model may call. Give ``handler(args, ctx)`` or ``webhook_url``."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    handler: Handler | None = None
    webhook_url: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    allow_hosts: frozenset[str] = frozenset()
    named_args: bool = False  # handler takes the arguments as keyword parameters (``@tool``)
    wants_ctx: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.name):
            raise ValueError(f"tool name {self.name!r} must be 1-64 letters, digits, _ or -")
        if (self.handler is None) == (self.webhook_url is None):
            raise ValueError(f"tool {self.name!r} needs exactly one of handler or webhook_url")
        if self.webhook_url is not None and urlsplit(self.webhook_url).scheme not in (
            "http",
            "https",
        ):
            raise ValueError(f"tool {self.name!r}: webhook_url must be http(s)")

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Run once, raising on failure (callers use :func:`call_tool`)."""
        if self.webhook_url is not None:
            return await post_webhook(
                self.webhook_url,
                {"tool": self.name, "arguments": args, "call_id": ctx["call_id"]},
                timeout_s=self.timeout_s,
                max_bytes=self.max_response_bytes,
                allow_hosts=self.allow_hosts,
            )
        assert self.handler is not None
        fn = self.handler
        if self.named_args:
            kwargs = dict(args)
            if self.wants_ctx:
                kwargs["ctx"] = ctx
            call: Callable[[], Any] = lambda: fn(**kwargs)  # noqa: E731
        else:
            call = lambda: fn(args, ctx)  # noqa: E731
        if inspect.iscoroutinefunction(fn):
            return await call()
        # Sync handlers run on a worker thread so a slow one cannot stall every call.
        result = await asyncio.to_thread(call)
        if inspect.isawaitable(result):
            return await result
        return result


async def call_tool(tool: Tool, args: dict[str, Any], ctx: ToolContext) -> tuple[Any, str | None]:
    """``(result, error)``: exactly one is meaningful; never raises except on cancellation."""
    try:
        async with asyncio.timeout(tool.timeout_s):
            result = await tool.run(args, ctx)
    except TimeoutError:
        return None, f"tool {tool.name} timed out after {tool.timeout_s:g} s"
    except ToolError as exc:
        return None, str(exc)
    except TypeError as exc:
        return None, f"bad arguments for {tool.name}: {exc}"
    except Exception as exc:
        log.warning("tool %s failed", tool.name, exc_info=True)
        return None, f"tool {tool.name} failed: {type(exc).__name__}: {exc}"
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        result = str(result)
    return result, None


# --- @tool ------------------------------------------------------------------

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_for(tp: Any) -> dict[str, Any]:
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    origin = get_origin(tp)
    if origin is Literal:
        values = list(get_args(tp))
        kinds = {_SCALARS.get(type(v), "string") for v in values}
        schema: dict[str, Any] = {"enum": values}
        if len(kinds) == 1:
            schema["type"] = kinds.pop()
        return schema
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set):
        args = get_args(tp)
        item = _schema_for(args[0]) if args and args[0] is not Ellipsis else {}
        return {"type": "array", "items": item} if item else {"type": "array"}
    if origin in (dict, Mapping) or tp is dict:
        return {"type": "object"}
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return _schema_for(inner[0])
        return {"anyOf": [_schema_for(a) for a in inner]}
    return {}


def _is_optional(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Summary text and per-argument descriptions from a Google-style ``Args:`` section."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section = None
    current = None
    for line in lines:
        stripped = line.strip()
        header = stripped.rstrip(":").lower()
        if stripped.endswith(":") and header in (
            "args",
            "arguments",
            "parameters",
            "returns",
            "raises",
            "example",
            "examples",
        ):
            section = header
            continue
        if section is None:
            summary.append(stripped)
        elif section in ("args", "arguments", "parameters") and stripped:
            m = re.match(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", stripped)
            if m and line.startswith((" ", "\t")) and len(line) - len(line.lstrip()) <= 4:
                current = m.group(1)
                params[current] = m.group(2)
            elif current:
                params[current] = f"{params[current]} {stripped}".strip()
    text = " ".join(" ".join(summary).split())
    return text, params


def tool(
    fn: Handler | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """Make a tool from a function: schema from type hints, descriptions from the docstring.

    Parameters become properties (no default → required). A parameter named
    ``ctx`` receives the :class:`ToolContext` and is not shown to the model.
    """

    def build(f: Handler) -> Tool:
        hints = get_type_hints(f)
        summary, docs = parse_docstring(f.__doc__)
        props: dict[str, Any] = {}
        required: list[str] = []
        wants_ctx = False
        for pname, param in inspect.signature(f).parameters.items():
            if pname == "ctx":
                wants_ctx = True
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            tp = hints.get(pname, str)
            schema = _schema_for(tp)
            if pname in docs:
                schema["description"] = docs[pname]
            if param.default is not inspect.Parameter.empty:
                if isinstance(param.default, str | int | float | bool):
                    schema["default"] = param.default
            elif not _is_optional(tp):
                required.append(pname)
            props[pname] = schema
        params: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            params["required"] = required
        return Tool(
            name=name or f.__name__,
            description=description if description is not None else summary,
            parameters=params,
            handler=f,
            timeout_s=timeout_s,
            named_args=True,
            wants_ctx=wants_ctx,
        )

    if fn is not None:
        return build(fn)
    return build


# --- webhooks -----------------------------------------------------------------


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class _PinnedResolver(AbstractResolver):
    """Answers only with addresses that were already vetted."""

    def __init__(self, host: str, results: list[ResolveResult]) -> None:
        self._host = host
        self._results = results

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"unexpected host {host}")
        return [dict(r, port=port) for r in self._results]  # type: ignore[misc]

    async def close(self) -> None:
        return None


async def vet_target(host: str, port: int, allow_hosts: Iterable[str] = ()) -> list[ResolveResult]:
    """Resolve ``host`` and refuse non-public addresses unless the host or IP is allow-listed."""
    allowed = {h.lower() for h in allow_hosts}
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(5):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise ToolError(f"cannot resolve webhook host {host}: {exc}") from None
    results: list[ResolveResult] = []
    for family, _, proto, _, sockaddr in infos:
        addr = str(sockaddr[0])
        ip = ipaddress.ip_address(addr.split("%")[0])
        if not _public(ip) and host.lower() not in allowed and addr not in allowed:
            raise ToolError(f"webhook host {host} resolves to non-public address {addr}; refused")
        results.append(
            {
                "hostname": host,
                "host": addr,
                "port": port,
                "family": family,
                "proto": proto,
                "flags": socket.AI_NUMERICHOST,
            }
        )
    if not results:
        raise ToolError(f"webhook host {host} has no addresses")
    return results


async def post_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    allow_hosts: Iterable[str] = (),
) -> Any:
    """POST ``payload`` as JSON; returns the JSON (or text) reply. Redirects are not followed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    resolved = await vet_target(host, port, allow_hosts)
    connector = aiohttp.TCPConnector(resolver=_PinnedResolver(host, resolved), use_dns_cache=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.post(url, json=payload, allow_redirects=False) as resp,
    ):
        body = bytearray()
        async for chunk in resp.content.iter_chunked(8192):
            body.extend(chunk)
            if len(body) > max_bytes:
                raise ToolError(f"webhook reply larger than {max_bytes} bytes; refused")
        if resp.status >= 400 or 300 <= resp.status < 400:
            raise ToolError(f"webhook answered HTTP {resp.status}")
        text = body.decode("utf-8", errors="replace")
        try:
            return json.loads(text) if text else None
        except ValueError:
            return text


# --- system tools ---------------------------------------------------------------

TRANSFER_CALL = ToolSpec(
    "transfer_call",
    "Transfer the caller to another phone number (E.164, e.g. +15550001111).",
    {
        "type": "object",
        "properties": {"number": {"type": "string", "description": "E.164 phone number"}},
        "required": ["number"],
    },
)
END_CALL = ToolSpec(
    "end_call",
    "Hang up the call once the conversation is finished.",
    {"type": "object", "properties": {}},
)
SYSTEM_TOOLS = (TRANSFER_CALL, END_CALL)
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def tool_specs(tools: Iterable[Tool]) -> list[ToolSpec]:
    """User tools plus the system tools, refusing duplicate names."""
    specs = [t.spec for t in tools]
    names = [s.name for s in specs] + [s.name for s in SYSTEM_TOOLS]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate tool names: {dupes}")
    return [*specs, *SYSTEM_TOOLS]
