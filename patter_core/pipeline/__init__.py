"""Pipeline mode: STT → LLM (or ``on_message``) → TTS as one Brain."""

from patter_core.pipeline.pipeline import OnMessage, Pipeline, TextFilter
from patter_core.pipeline.segmenter import SentenceSegmenter

__all__ = ["OnMessage", "Pipeline", "SentenceSegmenter", "TextFilter"]
