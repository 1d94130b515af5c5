"""A one-field modal (transfer target, DTMF digits) that validates before it returns."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import Regex
from textual.widgets import Input, Label


class PromptScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, placeholder: str, pattern: str, problem: str) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.validator = Regex(pattern, failure_description=problem)

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Label(self.title_text, classes="section")
            yield Input(placeholder=self.placeholder, validators=[self.validator], id="answer")
            yield Label("", id="prompt-error", classes="problem")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        result = event.validation_result
        if result is not None and not result.is_valid:
            self.query_one("#prompt-error", Label).update("; ".join(result.failure_descriptions))
            return
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
