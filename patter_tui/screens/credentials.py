"""Credentials: which names resolve and from where (never values); set or remove keyring ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.validation import Regex
from textual.widgets import Button, DataTable, Footer, Header, Input, Label

from patter_tui.errors import CLIENT_ERRORS
from patter_tui.messages import ConnectionChanged
from patter_tui.widgets.connection import ConnectionBar
from patterd.client import m

if TYPE_CHECKING:
    from patter_tui.app import PatterApp

NAME_PROBLEM = "names are UPPER_CASE letters, digits and _"


class CredentialsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload"),
        Binding("n", "new", "Set"),
        Binding("escape", "leave_form", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        # The line under the form shows why the last load failed: a later load that
        # works clears it (the daemon is back), but not a message about the form.
        self._showing_load_error = False

    @property
    def patter(self) -> PatterApp:
        from patter_tui.app import PatterApp

        assert isinstance(self.app, PatterApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar(id="connection")
        yield Label("Credentials (values are never shown)", classes="section")
        yield DataTable[str](id="creds", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="cred-form"):
            yield Input(
                placeholder="NAME",
                id="name",
                compact=True,
                validators=[Regex(m.CREDENTIAL_PATTERN, failure_description=NAME_PROBLEM)],
            )
            yield Input(placeholder="value", id="value", password=True, compact=True)
            yield Button("Set", id="set", variant="primary", compact=True)
            yield Button("Remove", id="remove", variant="error", compact=True)
        yield Label("", id="cred-error", classes="problem")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "credentials"
        table = self.query_one("#creds", DataTable)
        table.add_column("name", key="name")
        table.add_column("source", key="source")
        self.load()
        table.focus()

    def on_screen_resume(self) -> None:
        self.load()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        if message.connected:
            self.load()

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        table = self.query_one("#creds", DataTable)
        error = self.query_one("#cred-error", Label)
        try:
            creds = await self.patter.client.credentials()
        except CLIENT_ERRORS as exc:
            error.update(self.patter.problem(exc))
            self._showing_load_error = True
            return
        if self._showing_load_error:
            error.update("")
            self._showing_load_error = False
        table.clear()
        for cred in sorted(creds, key=lambda c: c.name):
            table.add_row(cred.name, cred.source, key=cred.name)

    def _error(self, text: str) -> None:
        self.query_one("#cred-error", Label).update(text)
        self._showing_load_error = False

    @on(DataTable.RowHighlighted, "#creds")
    def _pick(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.query_one("#name", Input).value = event.row_key.value

    def _checked_name(self) -> str | None:
        name_input = self.query_one("#name", Input)
        name = name_input.value.strip()
        result = name_input.validate(name)
        if not name or (result is not None and not result.is_valid):
            self._error(NAME_PROBLEM)
            name_input.focus()
            return None
        return name

    @on(Button.Pressed, "#set")
    @on(Input.Submitted, "#value")
    def _set_pressed(self) -> None:
        self.set_credential()

    @on(Button.Pressed, "#remove")
    def _remove_pressed(self) -> None:
        self.remove_credential()

    @work(exclusive=True, group="change")
    async def set_credential(self) -> None:
        name = self._checked_name()
        value_input = self.query_one("#value", Input)
        if name is None:
            return
        if not value_input.value:
            self._error("enter a value to store")
            value_input.focus()
            return
        try:
            await self.patter.client.set_credential(name, value_input.value)
        except CLIENT_ERRORS as exc:
            self._error(self.patter.problem(exc))
            return
        finally:
            value_input.clear()
        self._error("")
        self.notify(f"{name} stored in the keyring")
        self.load()

    @work(exclusive=True, group="change")
    async def remove_credential(self) -> None:
        name = self._checked_name()
        if name is None:
            return
        try:
            await self.patter.client.delete_credential(name)
        except CLIENT_ERRORS as exc:
            self._error(self.patter.problem(exc))
            return
        self._error("")
        self.notify(f"{name} removed from the keyring")
        self.load()

    def action_reload(self) -> None:
        self.load()

    def action_new(self) -> None:
        self.query_one("#name", Input).focus()

    def action_leave_form(self) -> None:
        self.query_one("#creds").focus()
