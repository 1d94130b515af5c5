from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from patter_core.providers.http import close_shared_session


@pytest.fixture(autouse=True)
async def _close_session() -> AsyncIterator[None]:
    yield
    await close_shared_session()
