"""Secrets, resolved from the first place that has them; values never leave this module's callers.

Order: explicit config → environment → ``$CREDENTIALS_DIRECTORY/<NAME>``
(systemd ``LoadCredential=``) → OS keyring (service ``patter``). The keyring
cannot enumerate its entries, so the names we wrote are kept in an index entry.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import keyring
import keyring.errors

from patterd.config import CREDENTIAL_NAME

log = logging.getLogger(__name__)

SERVICE = "patter"
INDEX_KEY = "__patter_names__"
Source = Literal["config", "env", "credentials_directory", "keyring"]

# The web dashboard's token: when set, the dashboard is served on any bind and every
# request to it must carry the token (or the session cookie its login form sets).
DASHBOARD_TOKEN = "PATTER_DASHBOARD_TOKEN"

KNOWN_NAMES = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TELNYX_API_KEY",
    "TELNYX_PUBLIC_KEY",
    "OPENAI_API_KEY",
    "ELEVENLABS_API_KEY",
    "DEEPGRAM_API_KEY",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "CARTESIA_API_KEY",
    DASHBOARD_TOKEN,
)


_keyring_warned = False


def _keyring_unavailable(name: str, exc: BaseException) -> None:
    """Warn once per process: a missing keyring fails every lookup the same way."""
    global _keyring_warned
    level = logging.DEBUG if _keyring_warned else logging.WARNING
    _keyring_warned = True
    log.log(
        level,
        "keyring unavailable while looking up %s: %s (further lookups logged at debug)",
        name,
        type(exc).__name__,
    )


class CredentialError(Exception):
    """A credential operation failed; the message never contains a value."""


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    name: str
    source: Source


def check_name(name: str) -> str:
    if not CREDENTIAL_NAME.match(name):
        raise CredentialError(
            f"invalid credential name {name!r}:"
            " use upper-case letters, digits and _ (OPENAI_API_KEY)"
        )
    return name


class Credentials:
    """Resolves secrets; calls ``on_secret`` with every value it hands out so logs can redact it."""

    def __init__(
        self,
        explicit: Mapping[str, str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self._explicit = dict(explicit or {})
        self._environ = environ if environ is not None else os.environ
        self._on_secret = on_secret
        for value in self._explicit.values():
            self._note(value)

    def set_explicit(self, explicit: Mapping[str, str]) -> None:
        self._explicit = dict(explicit)
        for value in self._explicit.values():
            self._note(value)

    def _note(self, value: str) -> None:
        if self._on_secret is not None and value:
            self._on_secret(value)

    def _credentials_dir(self) -> Path | None:
        d = self._environ.get("CREDENTIALS_DIRECTORY")
        return Path(d) if d else None

    def lookup(self, name: str) -> tuple[str, Source] | None:
        check_name(name)
        if name in self._explicit:
            return self._explicit[name], "config"
        if self._environ.get(name):
            return self._environ[name], "env"
        directory = self._credentials_dir()
        if directory is not None:
            try:
                value = (directory / name).read_text(encoding="utf-8").rstrip("\r\n")
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot read credential %s from CREDENTIALS_DIRECTORY: %s", name, exc)
            else:
                if value:
                    return value, "credentials_directory"
        try:
            stored = keyring.get_password(SERVICE, name)
        except keyring.errors.KeyringError as exc:
            _keyring_unavailable(name, exc)
            stored = None
        if stored:
            return stored, "keyring"
        return None

    def get(self, name: str) -> str | None:
        found = self.lookup(name)
        if found is None:
            return None
        self._note(found[0])
        return found[0]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise CredentialError(
                f"credential {name} is not set (config, environment, "
                "CREDENTIALS_DIRECTORY or keyring); set it with: patterctl creds set " + name
            )
        return value

    def set(self, name: str, value: str) -> None:
        """Store in the keyring (the only writable source)."""
        check_name(name)
        if not value:
            raise CredentialError(f"refusing to store an empty value for {name}")
        try:
            keyring.set_password(SERVICE, name, value)
            names = self._index()
            if name not in names:
                self._write_index([*names, name])
        except keyring.errors.KeyringError as exc:
            raise CredentialError(
                f"keyring refused to store {name}: {type(exc).__name__}"
            ) from None
        self._note(value)

    def delete(self, name: str) -> bool:
        """Remove from the keyring; False if it was not there."""
        check_name(name)
        existed = True
        try:
            keyring.delete_password(SERVICE, name)
        except keyring.errors.PasswordDeleteError:
            existed = False
        except keyring.errors.KeyringError as exc:
            raise CredentialError(
                f"keyring refused to delete {name}: {type(exc).__name__}"
            ) from None
        names = self._index()
        if name in names:
            self._write_index([n for n in names if n != name])
        return existed

    def list_names(self, extra: Iterable[str] = ()) -> list[CredentialInfo]:
        """Names that resolve, with where from; never values."""
        candidates: set[str] = set(KNOWN_NAMES) | set(self._explicit) | set(extra)
        candidates |= set(self._index())
        directory = self._credentials_dir()
        if directory is not None and directory.is_dir():
            candidates |= {p.name for p in directory.iterdir() if CREDENTIAL_NAME.match(p.name)}
        out = []
        for name in sorted(candidates):
            if not CREDENTIAL_NAME.match(name):
                continue
            found = self.lookup(name)
            if found is not None:
                out.append(CredentialInfo(name, found[1]))
        return out

    def _index(self) -> list[str]:
        try:
            raw = keyring.get_password(SERVICE, INDEX_KEY)
        except keyring.errors.KeyringError:
            return []
        if not raw:
            return []
        try:
            names = json.loads(raw)
        except ValueError:
            log.warning("ignoring a corrupt credential name index in the keyring")
            return []
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def _write_index(self, names: list[str]) -> None:
        keyring.set_password(SERVICE, INDEX_KEY, json.dumps(sorted(set(names))))
