"""Pipeline mode: STT → LLM (or ``on_message``) → TTS as one brain."""

from patter_core.pipeline.pipeline import Pipeline
from patter_core.pipeline.segmenter import Segmenter

__all__ = ["Pipeline", "Segmenter"]
