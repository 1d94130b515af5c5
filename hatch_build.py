"""Build hook: compile patter_core/audio/_fir.c next to its source.

The wheel then carries the extension (and is tagged for this platform); an
editable install imports it from the checkout. Compiling goes through
setuptools' ``build_ext`` so compiler flags are the platform's own. Without
a compiler the build still succeeds and the resampler falls back to numpy
(slower, same output), with a warning here.
"""

from __future__ import annotations

import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("patter_core/audio/_fir.c")
# Vectorise the dot product's reduction without -ffast-math, which would
# change floating-point modes for the whole process.
UNIX_FLAGS = [
    "-O3",
    "-fno-math-errno",
    "-fassociative-math",
    "-fno-signed-zeros",
    "-fno-trapping-math",
]


def compile_extension(root: Path) -> Path:
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    flags = [] if sys.platform == "win32" else UNIX_FLAGS
    ext = Extension("patter_core.audio._fir", [str(SOURCE)], extra_compile_args=flags)
    dist = Distribution({"name": "patter-fir", "ext_modules": [ext]})
    cmd = build_ext(dist)
    cmd.inplace = True
    with tempfile.TemporaryDirectory() as tmp:
        cmd.build_temp = tmp
        cmd.ensure_finalized()
        cmd.run()
    return root / f"patter_core/audio/_fir{sysconfig.get_config_var('EXT_SUFFIX')}"


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        try:
            built = compile_extension(root)
        except Exception as exc:  # no compiler: the numpy path still works
            print(f"patter: C kernel not built ({exc}); using numpy", file=sys.stderr)
            return
        if version != "editable":
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
            build_data["force_include"][str(built)] = str(built.relative_to(root))
