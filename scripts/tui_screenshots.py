"""Write docs/tui/*.png: the console's main screens from the recorded snapshot data.

Run from the repository root: python scripts/tui_screenshots.py [--size 100x30]
Textual saves SVG; cairosvg turns it into PNG. The SVG asks for Fira Code, which
is rarely installed, so the PNG is drawn with a monospace font that is.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import cairosvg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.tui_recorded import SCREENS, recorded_app  # noqa: E402

FONT = "DejaVu Sans Mono"


async def shoot(name: str, size: tuple[int, int]) -> str:
    app = recorded_app()
    async with app.run_test(size=size) as pilot:
        await SCREENS[name](pilot)
        return app.export_screenshot(title=f"patter-tui · {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100x30", help="columns x rows (default 100x30)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "tui")
    args = parser.parse_args()
    cols, rows = (int(n) for n in args.size.split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SCREENS:
        svg = asyncio.run(shoot(name, (cols, rows)))
        svg = svg.replace('"Fira Code"', f'"{FONT}"').replace("Fira Code,", f"{FONT},")
        target = args.out / f"{name}.png"
        cairosvg.svg2png(bytestring=svg.encode(), write_to=str(target), output_width=cols * 12)
        print(target.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
