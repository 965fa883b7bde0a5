"""The zone's public key, the one thing a client carries (PROTOCOL §16):
``vck2-public:<id 0-255>:<Ed25519 public key, 64 hex>``, one token per
file; blank lines and lines starting with ``#`` are ignored."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import ConfigError

__all__ = ["PublicKey", "KeySource"]

KeySource = Union["PublicKey", str, "os.PathLike[str]"]
"""What :class:`~vcheckd_client.Client` takes as a key: a parsed key, a
``vck2-public:`` token, or the path of a file holding one."""

_HEX = frozenset("0123456789abcdefABCDEF")
_SHAPE = "a v2 public key looks like vck2-public:<id 0-255>:<64 hex digits> (from vcheckd keygen --public)"


@dataclass(frozen=True)
class PublicKey:
    """A zone's Ed25519 verification key and its key id."""

    key_id: int
    verify_key: bytes

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """The key of a token or of a key file's text."""
        lines = [line.strip() for line in text.splitlines()]
        tokens = [line for line in lines if line and not line.startswith("#")]
        if len(tokens) != 1:
            raise ConfigError(f"expected one key, found {len(tokens)}: {_SHAPE}")
        parts = tokens[0].split(":")
        if len(parts) != 3 or parts[0] != "vck2-public":
            if parts[0].startswith("vck2-private"):
                raise ConfigError("that is the zone's private key (name servers only); clients carry the public one")
            if parts[0].startswith("vck1"):
                raise ConfigError("that is a protocol v1 shared key; this client speaks protocol v2: " + _SHAPE)
            raise ConfigError(_SHAPE)
        id_text, hex_text = parts[1], parts[2]
        if not id_text.isascii() or not id_text.isdigit() or int(id_text) > 255:
            raise ConfigError(f"key id {id_text!r} is not 0-255: {_SHAPE}")
        if len(hex_text) != 64 or not set(hex_text) <= _HEX:
            raise ConfigError(_SHAPE)
        return cls(int(id_text), bytes.fromhex(hex_text))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PublicKey:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read the zone's public key file {os.fspath(path)}: {e}") from e
        try:
            return cls.parse(text)
        except ConfigError as e:
            raise ConfigError(f"{os.fspath(path)}: {e}") from e

    @classmethod
    def load(cls, source: KeySource) -> PublicKey:
        """A key from a :class:`PublicKey`, a token, or a file's path."""
        if isinstance(source, PublicKey):
            return source
        if isinstance(source, str) and ("vck2-" in source or "vck1" in source):
            return cls.parse(source)
        return cls.from_file(source)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.verify_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def token(self) -> str:
        return f"vck2-public:{self.key_id}:{self.verify_key.hex()}"
