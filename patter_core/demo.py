"""``make demo``: what exists so far, run for real."""

from __future__ import annotations

from patter_core.audio import SESSION_FORMAT


def main() -> int:
    print(f"Patter demo: session audio format is {SESSION_FORMAT}; more arrives with each issue.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
