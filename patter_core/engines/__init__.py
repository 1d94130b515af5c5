"""Engines: brains where one provider does speech to speech."""

from patter_core.engines.echo import EchoEngine

__all__ = ["EchoEngine"]
