"""``patterctl`` entry point (the control client lands with its own issue)."""

import sys


def main() -> int:
    print("patterctl: not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
