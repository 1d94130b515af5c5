"""How many carrier messages an agent's reply costs: media messages and marks per second of speech.

An offline pipeline agent (LocalSTT, LocalTTS: eSpeak NG, faster than real time)
greets a caller on the simulated Twilio with a long first message; the caller's
side counts the ``media`` and ``mark`` messages it received while it heard the
reply. Each message is a WebSocket frame, a JSON text and a ``send`` system call
on the server, so fewer messages for the same audio is less CPU per call.
Run: ``PYTHONPATH=. .venv/bin/python -m bench.reply_messages``
"""

from __future__ import annotations

import asyncio
import logging

from patter_core import Patter, Twilio
from patter_core.providers.stt import LocalSTT
from patter_core.providers.tts import LocalTTS
from patter_core.testing import SimulatedTwilio

TEXT = "Thanks for calling Acme. Your order has shipped and should arrive on Thursday. " * 3
SETTLE_S = 1.0  # no new audio heard for this long: the reply is over


async def on_message(text: str) -> str:
    return "ok"


async def measure(text: str = TEXT) -> dict[str, float]:
    async with SimulatedTwilio() as sim:
        phone = Patter(
            carrier=Twilio(sim.account_sid, sim.auth_token, api_base_url=sim.api_url),
            phone_number="+15550001234",
            webhook_url=sim.public_host,
        )
        agent = phone.agent(stt=LocalSTT(), tts=LocalTTS(), first_message=text)
        server = asyncio.create_task(phone.serve(agent, port=0, on_message=on_message))
        try:
            await asyncio.wait_for(phone.ready, 30)
            assert phone.server is not None
            sim.server_url = f"http://127.0.0.1:{phone.server.port}"
            call = await sim.inbound_call(from_="+15550007777")
            heard = -1
            async with asyncio.timeout(120):
                while len(call.heard) != heard or heard == 0:
                    heard = len(call.heard)
                    await asyncio.sleep(SETTLE_S)
            seconds = heard / 8000
            result = {
                "speech_s": seconds,
                "media": call.media_received,
                "marks": len(call.marks),
                "media_per_s": call.media_received / seconds,
                "marks_per_s": len(call.marks) / seconds,
            }
            await call.hangup()
        finally:
            await phone.disconnect()
            await asyncio.wait_for(server, 10)
    return result


def main() -> None:
    logging.disable(logging.WARNING)
    r = asyncio.run(measure())
    print(
        f"{r['speech_s']:.1f} s of reply heard: {r['media']} media messages "
        f"({r['media_per_s']:.1f}/s), {r['marks']} marks ({r['marks_per_s']:.1f}/s)"
    )


if __name__ == "__main__":
    main()
