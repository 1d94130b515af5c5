"""API keys: explicit argument first, then the provider's environment variable."""

from __future__ import annotations

import os


def resolve_key(api_key: str | None, env_var: str, provider: str) -> str:
    key = api_key if api_key is not None else os.environ.get(env_var, "")
    if not key:
        raise ValueError(f"{provider}: no API key; pass api_key= or set {env_var}")
    return key
