"""One line at the top of every screen: connected to which daemon, or disconnected — retrying."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static


class ConnectionBar(Static):
    def on_mount(self) -> None:
        self.watch(self.app, "connection_text", self._show, init=True)

    def _show(self, text: Any) -> None:
        connected = bool(getattr(self.app, "connected", False))
        self.set_class(not connected, "-down")
        self.update(str(text))
