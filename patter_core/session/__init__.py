"""The call session: one carrier leg joined to one brain."""

from patter_core.session.callbacks import CallbackRunner
from patter_core.session.config import AgentConfig, CallControls, CallInfo
from patter_core.session.interruption import DEFAULT_BACKCHANNELS, InterruptionPolicy
from patter_core.session.ledger import PlaybackLedger, cut_text
from patter_core.session.session import CallSession

__all__ = [
    "DEFAULT_BACKCHANNELS",
    "AgentConfig",
    "CallControls",
    "CallInfo",
    "CallSession",
    "CallbackRunner",
    "InterruptionPolicy",
    "PlaybackLedger",
    "cut_text",
]
