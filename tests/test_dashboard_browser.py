"""End to end in headless Chromium: a call appears live, opens, and its transcript reads as text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from patter_core.events import Transcript
from tests.support.chromium import available, chromium_page
from tests.twilio_harness import twilio_rig

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not available(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium; "
        ".ci/run installs it)",
    ),
]

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
TEXTS = "document.querySelectorAll('#transcript .text')"


async def test_dashboard_shows_a_live_call_and_its_transcript_as_text():
    async with twilio_rig() as rig, chromium_page() as page:
        assert rig.phone.server is not None
        base = f"http://127.0.0.1:{rig.phone.server.port}/dashboard"
        await page.navigate(base)
        await page.wait_for("document.getElementById('live').classList.contains('on')")
        assert await page.evaluate("document.querySelectorAll('#calls tbody tr').length") == 0

        call = await rig.sim.inbound_call(from_="+15550007777")
        started = await rig.next_event("call.started")
        await rig.next_event("call.answered")
        cid = json.dumps(started.call_id)
        rows = "[...document.querySelectorAll('#calls tbody tr')]"
        row = f"{rows}.find((r) => r.dataset.callId === {cid})"
        await page.wait_for(f"{row} !== undefined && {row}.textContent.includes('live')")
        shots = os.environ.get("PATTER_DASHBOARD_SCREENSHOTS")  # a folder, for docs/
        if shots:
            await page.screenshot(Path(shots) / "calls.png")

        rig.phone.bus.publish(Transcript(call_id=started.call_id, role="caller", text="Hello"))
        await page.evaluate(f"{row}.querySelector('a').click()")
        await page.wait_for(
            f"location.pathname.endsWith({cid}) && document.readyState === 'complete'"
        )
        await page.wait_for(f"{TEXTS}.length === 1")
        await page.wait_for("document.getElementById('live').classList.contains('on')")

        # Said while the page is open: it arrives over SSE and is drawn by the page script.
        rig.phone.bus.publish(Transcript(call_id=started.call_id, role="caller", text=HOSTILE))
        rig.phone.bus.publish(
            Transcript(call_id=started.call_id, role="agent", text="Sure, one moment.")
        )
        await page.wait_for(f"{TEXTS}.length === 3")
        texts = await page.evaluate(f"[...{TEXTS}].map((e) => e.textContent)")
        assert texts == ["Hello", HOSTILE, "Sure, one moment."]
        assert (
            await page.evaluate(
                "document.querySelectorAll('#transcript script, #transcript img').length"
            )
            == 0
        )
        assert await page.evaluate("window.__pwned === undefined")

        if shots:
            await page.screenshot(Path(shots) / "call.png")

        await call.hangup()
        await rig.next_event("call.ended")
        await page.wait_for("document.querySelector('[data-field=status]').textContent !== 'live'")
        assert (
            await page.evaluate("document.querySelector('[data-field=status]').textContent")
            == "completed"
        )


async def test_login_form_gives_the_browser_a_session_that_the_live_stream_accepts():
    token = "browser-Token-9876543210"
    async with (
        twilio_rig(serve_kwargs={"dashboard_token": token}) as rig,
        chromium_page() as page,
    ):
        assert rig.phone.server is not None
        base = f"http://127.0.0.1:{rig.phone.server.port}/dashboard"
        await page.send("Page.navigate", url=base)
        await page.wait_for("location.pathname === '/dashboard/login'")
        await page.wait_for("document.querySelector('input[name=token]') !== null")
        await page.evaluate(
            f"document.querySelector('input[name=token]').value = {json.dumps(token)};"
            "document.querySelector('form').submit()"
        )
        await page.wait_for(
            "location.pathname === '/dashboard' && !!document.getElementById('calls')"
        )
        assert token not in await page.evaluate("location.href")
        assert await page.evaluate("document.cookie") == "", "the session cookie is HttpOnly"
        await page.wait_for("document.getElementById('live').classList.contains('on')")
        call = await rig.sim.inbound_call()
        started = await rig.next_event("call.started")
        await page.wait_for(
            "[...document.querySelectorAll('#calls tbody tr')]"
            f".some((r) => r.dataset.callId === {json.dumps(started.call_id)})"
        )
        await call.hangup()
        await rig.next_event("call.ended")
