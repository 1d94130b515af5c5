"""``Telnyx(...)``: API key, Call Control connection and webhook key, with environment fallbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_API_BASE = "https://api.telnyx.com/v2"


@dataclass
class Carrier:
    """Telnyx credentials. Empty arguments fall back to the environment.

    ``connection_id`` is the Call Control Application that owns the number and
    places calls. ``public_key`` (base64 Ed25519, from the portal) verifies
    webhooks; without it they are accepted unchecked, with a warning.
    ``api_base_url`` (env ``TELNYX_API_BASE_URL``) includes the ``/v2`` path and
    points commands at a local fake in tests and the demo.
    """

    api_key: str = field(default="", repr=False)
    connection_id: str = ""
    public_key: str = ""
    api_base_url: str = ""
    name: str = field(default="telnyx", init=False)

    def __post_init__(self) -> None:
        self.api_key = self.api_key or os.environ.get("TELNYX_API_KEY", "")
        self.connection_id = self.connection_id or os.environ.get("TELNYX_CONNECTION_ID", "")
        self.public_key = (self.public_key or os.environ.get("TELNYX_PUBLIC_KEY", "")).strip()
        base = self.api_base_url or os.environ.get("TELNYX_API_BASE_URL", "") or DEFAULT_API_BASE
        self.api_base_url = base.rstrip("/")

    def require(self) -> None:
        """Raise ValueError naming what is missing, before anything talks to Telnyx."""
        missing = [
            env
            for env, value in (
                ("TELNYX_API_KEY", self.api_key),
                ("TELNYX_CONNECTION_ID", self.connection_id),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                "Telnyx credentials missing: pass Telnyx(api_key=..., connection_id=...) "
                f"or set {' and '.join(missing)}"
            )
        if self.public_key:
            from patter_core.carriers.telnyx.signature import load_public_key

            load_public_key(self.public_key)


Telnyx = Carrier
