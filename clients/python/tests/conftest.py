"""Shared test inputs: the vector file of the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
VECTORS_PATH = REPO / "docs" / "vectors" / "v2.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
