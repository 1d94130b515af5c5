"""``patterctl``: drive a running patterd from the shell.

Exit codes: 0 ok · 1 the daemon reported an error · 2 usage (bad arguments,
or a request the daemon rejected as invalid: 400/422) · 3 daemon not running
or socket not accessible · 4 call or credential not found · 5 the call has
already ended (hangup, transfer, dtmf on a call that is only in the history).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from patter_core.events import CallEnded, Transcript
from patterd.client import (
    ApiError,
    CallHasEnded,
    ClientError,
    DaemonUnreachable,
    NotFound,
    PatterClient,
    SocketPermissionDenied,
    m,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_NOT_FOUND = 0, 1, 2, 3, 4
EXIT_CALL_ENDED = 5


class UsageError(Exception):
    pass


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


async def cmd_status(c: PatterClient, a: argparse.Namespace) -> int:
    s = await c.status()
    if a.json:
        _print_json(s.model_dump(mode="json"))
    else:
        print(f"patterd {s.version}  pid {s.pid}  up {s.uptime_s:.0f}s")
        live = f"{s.live_calls}" if s.max_calls is None else f"{s.live_calls} of {s.max_calls}"
        print(f"live calls: {live}  accepting: {'yes' if s.accepting else 'no (draining)'}")
        print(f"config: {s.config_path}\nsocket: {s.socket}")
    return EXIT_OK


async def cmd_calls(c: PatterClient, a: argparse.Namespace) -> int:
    if a.live:
        live = [call.model_dump(mode="json") for call in await c.live_calls()]
        if a.json:
            _print_json(live)
        else:
            cols = ["call_id", "direction", "caller", "callee", "agent", "state", "started_at"]
            print(_table(live, cols))
        return EXIT_OK
    page = await c.calls(a.limit, a.offset, direction=a.direction, status=a.status)
    if a.json:
        _print_json(page.model_dump(mode="json"))
    else:
        cols = ["call_id", "direction", "caller", "callee", "status", "started_at"]
        print(_table(page.calls, cols))
        if page.next_offset is not None:
            print(f"(more: --offset {page.next_offset})")
    return EXIT_OK


async def cmd_show(c: PatterClient, a: argparse.Namespace) -> int:
    detail = await c.call(a.call_id)
    _print_json(detail.model_dump(mode="json"))
    return EXIT_OK


def _ended_call(a: argparse.Namespace, detail: m.CallDetail) -> int:
    """What the store knows of a call that is over: its transcript, then its end."""
    call = detail.call
    if a.json:
        print(json.dumps({"pos": None, "call": call}, default=str), flush=True)
    else:
        for line in call.get("transcript") or []:
            if isinstance(line, dict):
                print(f"[{a.call_id}] {line.get('role')}: {line.get('text')}", flush=True)
        print(f"[{a.call_id}] call.ended", flush=True)
    status = call.get("status")
    print(
        f"patterctl: call {a.call_id} has ended" + (f" (status: {status})" if status else ""),
        file=sys.stderr,
    )
    return EXIT_OK


async def cmd_tail(c: PatterClient, a: argparse.Namespace) -> int:
    since = a.since
    if a.call_id is not None:
        # Position first, then the call: an end between the two is replayed, not missed.
        position = (await c.status()).event_position
        detail = await c.call(a.call_id)  # NotFound: exit 4
        if not detail.live:
            return _ended_call(a, detail)
        since = position if since is None else since
    seen_any = False
    async for item in c.events(call_id=a.call_id, since=since):
        if item.restarted:
            if seen_any or a.since is None:
                print("patterctl: patterd restarted; following the new daemon", file=sys.stderr)
            else:
                print(
                    f"patterctl: --since {a.since} is not a position of this patterd"
                    " (it restarted?); replaying from its start",
                    file=sys.stderr,
                )
            if a.call_id is not None:
                try:
                    detail = await c.call(a.call_id)
                except NotFound:
                    print(f"patterctl: the new patterd has no call {a.call_id}", file=sys.stderr)
                    return EXIT_NOT_FOUND
                if not detail.live:
                    return _ended_call(a, detail)
            continue
        seen_any = True
        if item.event is None:
            print(f"… {item.missed} event(s) missed", file=sys.stderr)
            continue
        ev = item.event
        if a.json:
            print(json.dumps({"pos": item.pos, "event": ev.model_dump(mode="json")}), flush=True)
        elif isinstance(ev, Transcript):
            print(f"[{ev.call_id}] {ev.role}: {ev.text}", flush=True)
        elif ev.type in ("call.started", "call.ended", "tool.called", "dtmf", "error"):
            print(f"[{ev.call_id}] {ev.type}", flush=True)
        if a.call_id is not None and isinstance(ev, CallEnded):
            return EXIT_OK
    return EXIT_OK


async def cmd_call(c: PatterClient, a: argparse.Namespace) -> int:
    call_id = await c.place_call(a.to, agent=a.agent, first_message=a.first_message)
    print(call_id)
    return EXIT_OK


async def cmd_hangup(c: PatterClient, a: argparse.Namespace) -> int:
    await c.hangup(a.call_id)
    return EXIT_OK


async def cmd_transfer(c: PatterClient, a: argparse.Namespace) -> int:
    await c.transfer(a.call_id, a.to)
    return EXIT_OK


async def cmd_dtmf(c: PatterClient, a: argparse.Namespace) -> int:
    await c.send_dtmf(a.call_id, a.digits)
    return EXIT_OK


def _read_secret(name: str) -> str:
    value = getpass.getpass(f"{name}: ") if sys.stdin.isatty() else sys.stdin.read()
    value = value.rstrip("\r\n")
    if not value:
        raise UsageError(f"no value given for {name}")
    return value


async def cmd_creds(c: PatterClient, a: argparse.Namespace) -> int:
    if a.creds_command == "set":
        value = await asyncio.to_thread(_read_secret, a.name)
        await c.set_credential(a.name, value)
        print(f"{a.name} stored in the keyring")
    elif a.creds_command == "rm":
        await c.delete_credential(a.name)
        print(f"{a.name} removed from the keyring")
    else:
        names = [n.model_dump() for n in await c.credentials()]
        if a.json:
            _print_json(names)
        else:
            print(_table(names, ["name", "source"]))
    return EXIT_OK


async def cmd_reload(c: PatterClient, a: argparse.Namespace) -> int:
    r = await c.reload()
    print(f"reloaded {r.config_path}")
    return EXIT_OK


async def cmd_store(c: PatterClient, a: argparse.Namespace) -> int:
    r = await c.rebuild_store()
    print(f"index rebuilt: {r.calls} call(s)")
    return EXIT_OK


Handler = Callable[[PatterClient, argparse.Namespace], Awaitable[int]]


def _call_id(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("a call id cannot be empty")
    return value


def _cred_name(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("a credential name cannot be empty")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="patterctl",
        description="Control a running patterd.",
        epilog=(
            "exit codes: 0 ok, 1 daemon error, 2 usage, 3 daemon unreachable, 4 not found,"
            " 5 call has ended"
        ),
    )
    p.add_argument("--socket", type=Path, default=None, help="control socket (or $PATTERD_SOCKET)")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.set_defaults(handler=handler)
        return sp

    add("status", cmd_status, "daemon status").add_argument("--json", action="store_true")
    calls = add("calls", cmd_calls, "call history (or --live)")
    calls.add_argument("--json", action="store_true")
    calls.add_argument("--live", action="store_true", help="calls in progress")
    calls.add_argument("--limit", type=int, default=20)
    calls.add_argument("--offset", type=int, default=0)
    calls.add_argument("--direction", choices=("inbound", "outbound"))
    calls.add_argument("--status")
    add("show", cmd_show, "one call as JSON").add_argument("call_id", type=_call_id)
    tail = add("tail", cmd_tail, "stream live transcripts (one call: ends when it ends)")
    tail.add_argument("call_id", nargs="?", type=_call_id)
    tail.add_argument("--since", type=int, default=None, help="resume after this position")
    tail.add_argument("--json", action="store_true", help="every event as a JSON line")
    call = add("call", cmd_call, "place an outbound call; prints its id")
    call.add_argument("to", help="E.164 number, e.g. +15551234567")
    call.add_argument("--agent")
    call.add_argument("--first-message")
    add("hangup", cmd_hangup, "hang up a live call").add_argument("call_id", type=_call_id)
    transfer = add("transfer", cmd_transfer, "transfer a live call")
    transfer.add_argument("call_id", type=_call_id)
    transfer.add_argument("to")
    dtmf = add("dtmf", cmd_dtmf, "send DTMF digits on a live call")
    dtmf.add_argument("call_id", type=_call_id)
    dtmf.add_argument("digits")
    creds = add("creds", cmd_creds, "credentials: set NAME | rm NAME | ls")
    creds_sub = creds.add_subparsers(dest="creds_command", required=True)
    creds_sub.add_parser("set", help="value from a hidden prompt or stdin").add_argument(
        "name", type=_cred_name
    )
    creds_sub.add_parser("rm").add_argument("name", type=_cred_name)
    creds_sub.add_parser("ls").add_argument("--json", action="store_true")
    add("reload", cmd_reload, "re-read the daemon's config")
    store = add("store", cmd_store, "store maintenance")
    store.add_subparsers(dest="store_command", required=True).add_parser(
        "rebuild", help="rebuild the call index from the JSONL logs"
    )
    return p


async def _run(args: argparse.Namespace) -> int:
    async with PatterClient(args.socket) as client:
        handler: Handler = args.handler
        return await handler(client, args)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except UsageError as exc:
        print(f"patterctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in err["loc"])
            print(f"patterctl: {where}: {err['msg']}", file=sys.stderr)
        return EXIT_USAGE
    except (DaemonUnreachable, SocketPermissionDenied) as exc:
        print(f"patterctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except NotFound as exc:
        print(f"patterctl: not found: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except CallHasEnded as exc:
        print(f"patterctl: {exc}", file=sys.stderr)
        return EXIT_CALL_ENDED
    except ApiError as exc:
        print(f"patterctl: {exc}", file=sys.stderr)
        return EXIT_USAGE if exc.status in (400, 422) else EXIT_ERROR
    except ClientError as exc:
        print(f"patterctl: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
