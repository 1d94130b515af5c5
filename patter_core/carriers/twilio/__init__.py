"""Twilio: signed webhooks, Media Streams, and REST call control."""

from patter_core.carriers.twilio.config import Carrier, Twilio
from patter_core.carriers.twilio.control import TwilioControl
from patter_core.carriers.twilio.leg import TwilioLeg
from patter_core.carriers.twilio.webhooks import TwilioRoutes

__all__ = ["Carrier", "Twilio", "TwilioControl", "TwilioLeg", "TwilioRoutes"]
