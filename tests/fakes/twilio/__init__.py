"""Twilio fakes: the simulated carrier and REST API ship in ``patter_core.testing``."""

from patter_core.testing.twilio import SimulatedCall, SimulatedTwilio, parse_stream_twiml

__all__ = ["SimulatedCall", "SimulatedTwilio", "parse_stream_twiml"]
