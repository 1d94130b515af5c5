"""Offline test tools: a simulated Twilio (REST API + carrier side of calls).

Use them to test your own agents without an account, a phone or a network;
see docs/testing.md.
"""

from patter_core.testing.twilio import (
    SimulatedCall,
    SimulatedTwilio,
    parse_stream_twiml,
    tone_mulaw,
)

__all__ = ["SimulatedCall", "SimulatedTwilio", "parse_stream_twiml", "tone_mulaw"]
