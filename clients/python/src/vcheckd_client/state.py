"""The client state (PROTOCOL §21): per zone and key id, the newest serial
and the newest ``issued`` accepted, and the last verified policy.

It is what refuses a replayed policy, and what lets the next report be
sealed without fetching the policy first, so it must survive restarts: a
state that cannot be saved is an error, never ignored.

The file is the one ``vcheckd check`` keeps, in the same format, so both
can share it::

    {"version": 1,
     "policies": [{"zone": "vc.example.com", "key_id": 7, "serial": 2026112301,
                   "issued": 1789999200, "policy": "<wire form, hex>"}]}

It is written atomically (a temporary file in the same folder, then a
rename). Before writing, the file is read again and merged (the maximum of
serial and issued, the policy issued last), so that two processes sharing it
never move it backwards.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from ._files import write_atomically
from .errors import ConfigError, PolicyError, StateError
from .keys import PublicKey
from .policy import Policy, Seen, decode_policy

__all__ = ["StateFile", "KeptState", "default_state_path", "STATE_FORMAT"]

STATE_FORMAT = 1
_FILE_NAME = "client-state.json"


def default_state_path(environ: Mapping[str, str] | None = None) -> Path:
    """``VCHECKD_STATE``, else ``$STATE_DIRECTORY/client-state.json`` (a
    systemd service with ``StateDirectory=``; the first of several), else
    ``$XDG_STATE_HOME/vcheckd/client-state.json``, else
    ``~/.local/state/vcheckd/client-state.json``. Raises ConfigError when
    none of these is set: the state is never kept in memory only."""
    env = os.environ if environ is None else environ
    if env.get("VCHECKD_STATE"):
        return Path(env["VCHECKD_STATE"])
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / _FILE_NAME
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "vcheckd" / _FILE_NAME
    if env.get("HOME"):
        return Path(env["HOME"]) / ".local" / "state" / "vcheckd" / _FILE_NAME
    raise ConfigError(
        "no place for the client state: give a state path (or set VCHECKD_STATE, STATE_DIRECTORY, "
        "XDG_STATE_HOME or HOME); it keeps the newest policy accepted so that a replayed one is refused"
    )


@dataclass(frozen=True)
class KeptState:
    """What the state holds for one zone and key id."""

    seen: Seen | None
    """Newest serial and issued accepted, or None before the first."""
    policy: Policy | None
    """The last verified policy (signature checked again on load), or None."""


class StateFile:
    """The state file at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"version": STATE_FORMAT, "policies": []}
        except (OSError, UnicodeDecodeError) as e:
            raise StateError(f"cannot read the client state {self.path}: {e}") from e
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise StateError(f"the client state {self.path} is not JSON ({e}): remove it to start afresh") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("policies"), list):
            raise StateError(
                f"the client state {self.path} is not a vcheckd client state: remove it or give another path"
            )
        if doc.get("version") != STATE_FORMAT:
            raise StateError(
                f"the client state {self.path} has format {doc.get('version')!r}, this client reads {STATE_FORMAT}: "
                "a newer client wrote it; give this one another path"
            )
        return doc

    def _entry(self, doc: dict[str, Any], zone: str, key_id: int) -> dict[str, Any] | None:
        for entry in doc["policies"]:
            if isinstance(entry, dict) and entry.get("zone") == zone and entry.get("key_id") == key_id:
                return entry
        return None

    def _seen(self, entry: dict[str, Any]) -> Seen:
        serial, issued = entry.get("serial"), entry.get("issued")
        if not isinstance(serial, int) or not isinstance(issued, int) or serial < 0 or issued < 0:
            raise StateError(
                f"the client state {self.path} holds a bad serial or issued time: remove it to start afresh"
            )
        return Seen(serial, issued)

    def load(self, zone: str, key: PublicKey) -> KeptState:
        """The state of ``zone`` (canonical form) under ``key``."""
        entry = self._entry(self._read(), zone, key.key_id)
        if entry is None:
            return KeptState(None, None)
        seen = self._seen(entry)
        policy = None
        raw = entry.get("policy")
        if isinstance(raw, str):
            try:
                policy = decode_policy(bytes.fromhex(raw), key, zone)
            except (ValueError, PolicyError):
                policy = None  # a damaged copy: the next check fetches a fresh one
        return KeptState(seen, policy)

    def save(self, zone: str, key_id: int, seen: Seen, policy: Policy | None) -> None:
        """Merges this state into the file and writes it atomically."""
        doc = self._read()
        entry = self._entry(doc, zone, key_id)
        if entry is None:
            entry = {"zone": zone, "key_id": key_id, "serial": 0, "issued": 0}
            doc["policies"].append(entry)
        kept = self._seen(entry)
        if policy is not None and policy.issued >= kept.issued:
            entry["policy"] = policy.wire.hex()
        entry["serial"] = max(kept.serial, seen.serial)
        entry["issued"] = max(kept.issued, seen.issued)
        text = json.dumps(doc, indent=2) + "\n"
        try:
            write_atomically(self.path, text)
        except OSError as e:
            raise StateError(f"cannot save the client state {self.path}: {e}") from e
