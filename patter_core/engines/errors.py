"""Typed engine errors. Messages name the provider and the failure, never a secret."""

from __future__ import annotations

from patter_core.brain import BrainFailure
from patter_core.providers.base import ProviderError

# Failure codes an engine reports in ``BrainFailure.code``.
AUTH_FAILED = "auth_failed"
RATE_LIMITED = "rate_limited"
ENGINE_ERROR = "engine_error"
PROVIDER_ERROR = "provider_error"


class EngineError(ProviderError):
    """An engine could not connect or talk to its provider; ``code`` is one of the above."""

    def __init__(
        self,
        provider: str,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(provider, message, status=status, retryable=retryable)
        self.code = code

    def failure(self, *, fatal: bool = True) -> BrainFailure:
        return BrainFailure(code=self.code, message=str(self), fatal=fatal)


def scrub(text: str, *secrets: str) -> str:
    """Remove secrets from text a provider sent back (some echo the key they refused)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
