"""``patter-tui`` entry point (the console lands with its own issue)."""

import sys


def main() -> int:
    print("patter-tui: not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
