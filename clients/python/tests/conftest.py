"""Fixtures: a built vcheckd binary, and a running server with its key."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator

import pytest

from .support import VcheckdServer, keygen, vcheckd_binary


@pytest.fixture(scope="session")
def binary() -> Path:
    """The vcheckd binary (built once); skips or fails when there is none."""
    return vcheckd_binary()


@pytest.fixture
def server(binary: Path, tmp_path: Path) -> Iterator[VcheckdServer]:
    """A running vcheckd serving the test zone with key id 5; its public
    key is ``tmp_path / "keys" / "v5.public"``."""
    keys = tmp_path / "keys"
    keys.mkdir()
    keygen(binary, keys, 5)
    running = VcheckdServer(binary, tmp_path / "server", keys / "v5.private").start()
    yield running
    running.stop()
