from __future__ import annotations

import pytest

from patter_core.pipeline.segmenter import SentenceSegmenter
from patter_core.pipeline.speaker import Piece, heard_texts
from patter_core.providers.base import Message


def cut(text: str, step: int = 3, **kw: int) -> list[str]:
    seg = SentenceSegmenter(**kw)
    out: list[str] = []
    for i in range(0, len(text), step):
        out += seg.push(text[i : i + step])
    tail = seg.flush()
    return [*out, tail] if tail else out


@pytest.mark.parametrize("step", [1, 3, 50])
def test_sentences_abbreviations_decimals_and_ellipses(step: int) -> None:
    text = (
        "Hello there! Dr. Smith sees you at 3.5 p.m. today. Is that ok? "
        "Well... maybe not. Wait... Yes, e.g. tomorrow. J. R. Tolkien costs $1,000.50 now."
    )
    assert cut(text, step) == [
        "Hello there!",
        "Dr. Smith sees you at 3.5 p.m. today.",
        "Is that ok?",
        "Well... maybe not.",
        "Wait... Yes, e.g. tomorrow.",
        "J. R. Tolkien costs $1,000.50 now.",
    ]


def test_short_pieces_join_the_next_and_long_clauses_split() -> None:
    assert cut("Sure. Let me look.") == ["Sure. Let me look."]
    text = "This clause is rather long and keeps going for quite a while, so we cut here and go on"
    assert cut(text, clause_chars=40) == [
        "This clause is rather long and keeps going for quite a while,",
        "so we cut here and go on",
    ]


def test_abbreviation_ends_a_sentence_only_before_a_capital() -> None:
    assert cut("We open at 9 a.m. and close at 5 p.m. Anything else?") == [
        "We open at 9 a.m. and close at 5 p.m.",
        "Anything else?",
    ]


def test_closing_quotes_stay_with_their_sentence() -> None:
    assert cut('He said "stop right now." Then he left.') == [
        'He said "stop right now."',
        "Then he left.",
    ]


def test_heard_texts_cut_at_a_word_inside_the_piece_being_played() -> None:
    msg = Message("assistant")
    pieces = [Piece("One two three four.", msg, 1000.0), Piece("Five six.", msg, 500.0)]
    assert heard_texts(pieces, 2000.0) == ["One two three four.", "Five six."]
    assert heard_texts(pieces, 500.0) == ["One two", ""]
    assert heard_texts(pieces, 1250.0) == ["One two three four.", "Five"]
    assert heard_texts(pieces, 0.0) == ["", ""]
