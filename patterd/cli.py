"""``patterd``: run the daemon in the foreground, or check a config file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import cast

from patterd import __version__
from patterd.config import ConfigError, default_config_path, load_config
from patterd.daemon import (
    DEFAULT_RUNTIME,
    Daemon,
    DaemonOptions,
    StartupError,
    load_runtime_factory,
)
from patterd.logs import setup_logging
from patterd.paths import SocketInUse, SocketPathUnusable, default_socket_path

log = logging.getLogger("patterd")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="patterd", description="The Patter daemon.")
    p.add_argument("--version", action="version", version=f"patterd {__version__}")
    sub = p.add_subparsers(dest="command")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--config",
            type=Path,
            default=None,
            help=f"config file (default: $PATTERD_CONFIG or {default_config_path()})",
        )

    run = sub.add_parser("run", help="run in the foreground (the default)")
    common(run)
    run.add_argument("--socket", type=Path, default=None, help="control socket path")
    run.add_argument("--log-format", choices=("logfmt", "json"), default="logfmt")
    run.add_argument(
        "--log-level",
        default=os.environ.get("PATTERD_LOG_LEVEL", "INFO"),
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    )
    run.add_argument(
        "--grace",
        type=_seconds,
        default=None,
        help="seconds live calls may run on after SIGTERM",
    )
    run.add_argument(
        "--runtime",
        default=os.environ.get("PATTERD_RUNTIME", DEFAULT_RUNTIME),
        help="module:function building the SDK runtime",
    )
    check = sub.add_parser(
        "check-config", help="validate the config file and exit (0 ok, 1 errors)"
    )
    common(check)
    return p


def _config_path(arg: Path | None) -> Path:
    if arg is not None:
        return arg.expanduser().absolute()
    env = os.environ.get("PATTERD_CONFIG")
    return Path(env).expanduser().absolute() if env else default_config_path()


def check_config(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(
        f"{path}: ok ({len(config.agents)} agent(s), {len(config.numbers)} number(s),"
        f" carrier {config.carrier.kind})"
    )
    return 0


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """asyncio's own loop, or uvloop's C loop when the config asks for it.

    uvloop is optional: measured on the echo load (bench/README.md) it saved no
    CPU beyond run-to-run noise, because the cost per frame is in Python code.
    """
    if choice != "uvloop":
        log.info("event loop: asyncio")
        return None
    try:
        import uvloop
    except ImportError:
        raise StartupError(
            "event_loop = \"uvloop\" but uvloop is not installed (pip install 'patter[uvloop]')"
        ) from None
    log.info("event loop: uvloop %s", version("uvloop"))
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        redactor = setup_logging(args.log_format, args.log_level)
    except ValueError as exc:
        print(f"patterd: {exc} (PATTERD_LOG_LEVEL or --log-level)", file=sys.stderr)
        return 2
    path = _config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config: %s", problem)
        return 1
    socket_path = (args.socket or default_socket_path()).expanduser()
    try:
        factory = load_runtime_factory(args.runtime)
        daemon = Daemon(
            DaemonOptions(
                config_path=path,
                socket_path=socket_path,
                runtime_factory=factory,
                drain_grace_s=args.grace,
            ),
            config,
            redactor,
        )
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    try:
        loop_factory = event_loop_factory(config.event_loop)
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(daemon.run())
    except (SocketInUse, SocketPathUnusable, StartupError) as exc:
        log.error("%s", exc)
        return 1
    except PermissionError as exc:
        log.error("cannot create the control socket: %s", exc)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "run")
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(_config_path(args.config))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
