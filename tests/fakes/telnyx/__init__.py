"""Telnyx fakes: the simulated carrier and Call Control API ship in ``patter_core.testing``."""

from patter_core.testing.telnyx import SimulatedTelnyx, SimulatedTelnyxCall, tone_for

__all__ = ["SimulatedTelnyx", "SimulatedTelnyxCall", "tone_for"]
