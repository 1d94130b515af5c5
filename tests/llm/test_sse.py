from __future__ import annotations

from patter_core.providers.sse import SSEEvent, SSEParser


def feed_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


def test_lf_crlf_and_cr_line_endings() -> None:
    body = b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\n"
    assert [e.data for e in feed_all([body])] == ["a", "b", "c", "d"]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    events = feed_all([b"data: one\r", b"\n\r", b"\ndata: two\r\n\r\n"])
    assert [e.data for e in events] == ["one", "two"]


def test_comments_event_names_and_multiline_data() -> None:
    body = b': keep-alive\nevent: message_start\ndata: {"a":\ndata: 1}\nid: 7\n\n'
    (event,) = feed_all([body])
    assert event == SSEEvent("message_start", '{"a":\n1}', "7")


def test_byte_by_byte_with_multibyte_utf8_and_bom() -> None:
    body = "\ufeffdata: héllo – ✓\n\n".encode()
    (event,) = feed_all([body[i : i + 1] for i in range(len(body))])
    assert event.data == "héllo – ✓"
    assert event.event == "message"


def test_last_event_without_blank_line_is_delivered() -> None:
    assert [e.data for e in feed_all([b"data: x\n\ndata: tail"])] == ["x", "tail"]


def test_blank_lines_alone_dispatch_nothing_and_reset_event_name() -> None:
    events = feed_all([b"\n\nevent: ping\n\ndata: after\n\n"])
    assert events == [SSEEvent("message", "after")]
