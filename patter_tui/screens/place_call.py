"""Place a call: number (E.164, checked as you type), agent, first message; errors inline."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.validation import Regex
from textual.widgets import Button, Footer, Header, Input, Label

from patter_tui.errors import CLIENT_ERRORS
from patter_tui.widgets.connection import ConnectionBar
from patterd.client import ApiError, m

if TYPE_CHECKING:
    from patter_tui.app import PatterApp

E164_PROBLEM = "number must be E.164: + then country code and number, e.g. +15551234567"


class PlaceCallScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("ctrl+s", "submit", "Call"),
    ]

    @property
    def patter(self) -> PatterApp:
        from patter_tui.app import PatterApp

        assert isinstance(self.app, PatterApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar(id="connection")
        with VerticalScroll(id="form"):
            yield Label("Number", classes="field")
            yield Input(
                placeholder="+15551234567",
                id="to",
                validators=[Regex(m.E164_PATTERN, failure_description=E164_PROBLEM)],
                valid_empty=False,
            )
            yield Label("", id="to-error", classes="problem")
            yield Label("Agent (empty: the daemon's default)", classes="field")
            yield Input(placeholder="receptionist", id="agent")
            yield Label("First message (optional)", classes="field")
            yield Input(placeholder="Hello, this is …", id="first", max_length=2000)
            yield Label("", id="form-error", classes="problem")
            with Horizontal(id="form-buttons"):
                yield Button("Call", id="call", variant="primary")
                yield Button("Cancel", id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "place a call"
        self.query_one("#to", Input).focus()

    @on(Input.Changed, "#to")
    def _check_number(self, event: Input.Changed) -> None:
        result = event.validation_result
        problem = "" if result is None or result.is_valid or not event.value else E164_PROBLEM
        self.query_one("#to-error", Label).update(problem)

    @on(Input.Submitted)
    @on(Button.Pressed, "#call")
    def action_submit(self) -> None:
        self.submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.app.pop_screen()

    @work(exclusive=True, group="place")
    async def submit(self) -> None:
        to_input = self.query_one("#to", Input)
        to = to_input.value.strip()
        result = to_input.validate(to)
        form_error = self.query_one("#form-error", Label)
        if result is not None and not result.is_valid:
            self.query_one("#to-error", Label).update(E164_PROBLEM)
            to_input.focus()
            return
        agent = self.query_one("#agent", Input).value.strip() or None
        first = self.query_one("#first", Input).value.strip() or None
        form_error.update("placing the call…")
        try:
            call_id = await self.patter.client.place_call(to, agent, first)
        except ApiError as exc:
            form_error.update("\n".join([str(exc).splitlines()[0], *exc.details]))
            return
        except CLIENT_ERRORS as exc:
            form_error.update(self.patter.problem(exc))
            return
        form_error.update("")
        self.app.pop_screen()
        self.patter.open_call(call_id)
