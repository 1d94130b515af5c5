"""``Twilio(...)``: credentials and endpoints, with environment fallbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Carrier:
    """Twilio account credentials. Empty arguments fall back to the environment.

    ``api_base_url`` (env ``TWILIO_API_BASE_URL``) points REST calls elsewhere:
    a local fake in tests and the demo, or a proxy. ``region`` and ``edge``
    are passed to the ``twilio`` package as they are.
    """

    account_sid: str = ""
    auth_token: str = field(default="", repr=False)
    api_base_url: str = ""
    region: str | None = None
    edge: str | None = None
    name: str = field(default="twilio", init=False)

    def __post_init__(self) -> None:
        self.account_sid = self.account_sid or os.environ.get("TWILIO_ACCOUNT_SID", "")
        self.auth_token = self.auth_token or os.environ.get("TWILIO_AUTH_TOKEN", "")
        self.api_base_url = (self.api_base_url or os.environ.get("TWILIO_API_BASE_URL", "")).rstrip(
            "/"
        )

    def require(self) -> None:
        """Raise ValueError naming what is missing, before anything talks to Twilio."""
        missing = [
            env
            for env, value in (
                ("TWILIO_ACCOUNT_SID", self.account_sid),
                ("TWILIO_AUTH_TOKEN", self.auth_token),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                "Twilio credentials missing: pass Twilio(account_sid=..., auth_token=...) "
                f"or set {' and '.join(missing)}"
            )
        if not self.account_sid.startswith("AC"):
            raise ValueError("Twilio account_sid must start with 'AC'")


Twilio = Carrier
