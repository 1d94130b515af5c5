"""bench/reply_messages.py in miniature: a reply faster than real time reaches the carrier
in about ten media messages a second (100 ms each), one mark after each, not fifty."""

from bench.reply_messages import measure


async def test_a_spoken_reply_costs_ten_messages_a_second_not_fifty():
    r = await measure("Your order has shipped and should arrive on Thursday.")
    assert r["speech_s"] > 2.0
    assert r["media_per_s"] < 12, r  # was 50 (one per 20 ms frame)
    assert 9 < r["marks_per_s"] <= 11, r  # a mark every 100 ms of the reply
