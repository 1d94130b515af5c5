"""Telnyx: Ed25519-signed Call Control webhooks, media streaming, and call commands."""

from patter_core.carriers.telnyx.config import Carrier, Telnyx
from patter_core.carriers.telnyx.control import TelnyxControl
from patter_core.carriers.telnyx.leg import TelnyxLeg
from patter_core.carriers.telnyx.webhooks import TelnyxRoutes

__all__ = ["Carrier", "Telnyx", "TelnyxControl", "TelnyxLeg", "TelnyxRoutes"]
