"""Offline test tools: simulated carriers (API + carrier side of calls).

Use them to test your own agents without an account, a phone or a network;
see docs/testing.md and docs/telnyx.md.
"""

from patter_core.testing.telnyx import SimulatedTelnyx, SimulatedTelnyxCall, tone_for
from patter_core.testing.twilio import (
    CallRefused,
    SimulatedCall,
    SimulatedTwilio,
    parse_stream_twiml,
    tone_mulaw,
)

__all__ = [
    "CallRefused",
    "SimulatedCall",
    "SimulatedTelnyx",
    "SimulatedTelnyxCall",
    "SimulatedTwilio",
    "parse_stream_twiml",
    "tone_for",
    "tone_mulaw",
]
