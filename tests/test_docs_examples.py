"""Every Python example in README.md and docs/ must still import and run.

Docs drift silently: a renamed class or keyword leaves an example that reads
well and fails the first user who pastes it. Each ```python block is run as
its own program with no credentials in its environment. It must exit 0, or,
where it needs a real account or a running daemon, stop on the SDK's own
clear error for exactly that. A block marked ```python fragment (a snippet
that continues another one) is not run; its imports are still checked.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUR_PACKAGES = {"patter_core", "patterd", "patter_tui"}
RUN_TIMEOUT_S = 120.0

# The one-line errors that mean "this example needs an account, a key or a
# running patterd", which a machine with no credentials must answer with.
NEEDS_ACCOUNT = re.compile(
    r"credentials missing: pass"
    r"|: no API key[;( ]"
    r"|: no agent id \(pass"
    r"|patterd is not running \(no control socket"
)

_FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    code: str
    fragment: bool

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _examples() -> list[Example]:
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            fragment = "fragment" in match.group(1).split()
            found.append(Example(path, line, match.group(2), fragment))
    return found


EXAMPLES = _examples()


def test_the_docs_have_examples() -> None:
    runnable = [e for e in EXAMPLES if not e.fragment]
    assert len(runnable) >= 30, [e.name for e in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_example_parses_and_its_imports_exist(example: Example) -> None:
    tree = compile(
        example.code,
        example.name,
        "exec",
        flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OUR_PACKAGES:
                    importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] not in OUR_PACKAGES:
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")


def _clean_env(home: Path) -> dict[str, str]:
    """No credential of any kind, and a private home so examples that store
    calls or look for patterd's socket touch nothing of the user's."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        "TMPDIR": str(home / "tmp"),
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
    }
    for key in ("XDG_RUNTIME_DIR", "TMPDIR"):
        Path(env[key]).mkdir(mode=0o700, parents=True, exist_ok=True)
    return env


def _run(example: Example, workdir: Path) -> tuple[int | None, str]:
    workdir.mkdir(parents=True)
    script = workdir / "example.py"
    script.write_text(example.code, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=workdir,
            env=_clean_env(workdir / "home"),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {RUN_TIMEOUT_S:.0f} s"
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int | None, str]]:
    """Runs every example once, a few at a time: each is a fresh interpreter
    that spends most of its second importing."""
    base = tmp_path_factory.mktemp("docs-examples")
    runnable = [e for e in EXAMPLES if not e.fragment]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda pair: _run(pair[1], base / str(pair[0])), enumerate(runnable))
        return {e.name: r for e, r in zip(runnable, results, strict=True)}


@pytest.mark.parametrize("example", [e for e in EXAMPLES if not e.fragment], ids=lambda e: e.name)
def test_example_runs(example: Example, outcomes: dict[str, tuple[int | None, str]]) -> None:
    returncode, stderr = outcomes[example.name]
    if returncode == 0:
        return
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    assert returncode is not None and NEEDS_ACCOUNT.search(last), (
        f"{example.name} failed (exit {returncode}):\n{stderr[-3000:]}"
    )
