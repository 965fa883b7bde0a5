"""README.md's embedding example, run as written against the demo server
it names (``vcheckd serve`` without a config), with one replacement: the
demo's address 127.0.0.1:5300 becomes the free port the test bound."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .support import VcheckdServer

README = Path(__file__).resolve().parents[1] / "README.md"


def marked_block(marker: str) -> str:
    """The fenced block right below ``<!-- test: MARKER -->``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"<!-- test: {marker} -->")
    assert lines[start + 1] == "```python", "the marker must sit right above a python block"
    end = lines.index("```", start + 2)
    return "\n".join(lines[start + 2 : end]) + "\n"


def test_the_embedding_example_runs_as_written(binary: Path, tmp_path: Path) -> None:
    code = marked_block("embed")
    assert len(code.strip().splitlines()) <= 14, "a short example"
    assert "127.0.0.1:5300" in code and "data/demo.v2.public" in code
    demo = VcheckdServer.embedded(binary, tmp_path / "repo").start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISABLE_") and k != "VCHECKD_STATE"}
        env["XDG_STATE_HOME"] = str(tmp_path / "state")  # not the real home's state
        env.pop("STATE_DIRECTORY", None)
        run = subprocess.run(
            [sys.executable, "-c", code.replace("127.0.0.1:5300", demo.address)],
            cwd=demo.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        demo.stop()
    assert run.returncode == 0, run.stderr
    assert run.stdout == "upgrade-available: 2.4.1 is available\n", run.stdout + run.stderr
    assert (tmp_path / "state" / "vcheckd" / "client-state.json").exists(), "the default state place"
