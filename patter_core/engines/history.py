"""What was said on a call, kept by an engine so a fresh provider session can resume it.

Speech-to-speech providers keep the conversation server-side. When a socket
drops or a session reaches its length cap, the engine opens a new one and
replays this record, so the model's memory survives the switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["user", "assistant", "function_call", "function_call_output"]


@dataclass(slots=True)
class Entry:
    kind: Kind
    text: str = ""
    item_id: str = ""
    call_id: str = ""
    name: str = ""


class History:
    def __init__(self, max_entries: int = 200) -> None:
        self.entries: list[Entry] = []
        self._max = max_entries

    def _add(self, entry: Entry) -> None:
        self.entries.append(entry)
        if len(self.entries) > self._max:
            del self.entries[: len(self.entries) - self._max]

    def user(self, text: str) -> None:
        if text.strip():
            self._add(Entry("user", text.strip()))

    def assistant(self, text: str, item_id: str = "") -> None:
        if text.strip():
            self._add(Entry("assistant", text.strip(), item_id=item_id))

    def function_call(self, call_id: str, name: str, arguments: str) -> None:
        self._add(Entry("function_call", arguments, call_id=call_id, name=name))

    def function_output(self, call_id: str, output: str) -> None:
        self._add(Entry("function_call_output", output, call_id=call_id))

    def cut_assistant(self, item_id: str, fraction: float) -> None:
        """Keep only the heard share of an interrupted reply (by characters, at a word end)."""
        for entry in reversed(self.entries):
            if entry.kind == "assistant" and entry.item_id == item_id:
                keep = max(0, min(len(entry.text), round(len(entry.text) * fraction)))
                cut = entry.text[:keep]
                if keep < len(entry.text) and " " in cut:
                    cut = cut[: cut.rfind(" ")]
                entry.text = cut.strip()
                if not entry.text:
                    self.entries.remove(entry)
                return

    def needs_reply(self) -> bool:
        """The caller (or a tool) spoke last, so the agent still owes an answer."""
        return bool(self.entries) and self.entries[-1].kind in ("user", "function_call_output")

    def openai_items(self, *, ga: bool) -> list[dict[str, Any]]:
        """``conversation.item.create`` items for OpenAI Realtime (GA or beta content types)."""
        items: list[dict[str, Any]] = []
        for e in self.entries:
            if e.kind == "user":
                items.append(_message("user", "input_text", e.text))
            elif e.kind == "assistant":
                items.append(_message("assistant", "output_text" if ga else "text", e.text))
            elif e.kind == "function_call":
                items.append(
                    {
                        "type": "function_call",
                        "call_id": e.call_id,
                        "name": e.name,
                        "arguments": e.text,
                    }
                )
            else:
                items.append(
                    {"type": "function_call_output", "call_id": e.call_id, "output": e.text}
                )
        return items

    def as_text(self) -> str:
        """A plain transcript, for providers that accept context only as text."""
        lines = []
        for e in self.entries:
            if e.kind == "user":
                lines.append(f"Caller: {e.text}")
            elif e.kind == "assistant":
                lines.append(f"Agent: {e.text}")
            elif e.kind == "function_call":
                lines.append(f"(tool {e.name} called with {e.text})")
            else:
                lines.append(f"(tool result: {e.text})")
        return "\n".join(lines)


def _message(role: str, content_type: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": content_type, "text": text}]}
