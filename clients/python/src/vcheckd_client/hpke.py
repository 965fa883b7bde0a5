"""HPKE (RFC 9180) in base mode, sender side, for the one suite protocol v2
uses: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305
(KEM 0x0020, KDF 0x0001, AEAD 0x0003).

``cryptography`` has the primitives (X25519, ChaCha20-Poly1305) but no
HPKE, so the key schedule is written out here from RFC 9180 §4-§5.1 and
§7.1.3 (``DeriveKeyPair``). Only what sealing one message needs: one
encryption per context (sequence number 0, so the nonce is ``base_nonce``).

The intermediate values are kept on :class:`SenderContext` so that tests
can compare each with docs/vectors/v2.json.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = ["SenderContext", "setup_base_sender", "derive_key_pair"]

_KEM_ID, _KDF_ID, _AEAD_ID = 0x0020, 0x0001, 0x0003
_KEM_SUITE = b"KEM" + struct.pack(">H", _KEM_ID)
_HPKE_SUITE = b"HPKE" + struct.pack(">HHH", _KEM_ID, _KDF_ID, _AEAD_ID)
_N_SECRET, _N_KEY, _N_NONCE, _N_HASH = 32, 32, 12, 32


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(_N_HASH), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


def derive_key_pair(ikm: bytes) -> X25519PrivateKey:
    """RFC 9180 §7.1.3 ``DeriveKeyPair`` for DHKEM(X25519, HKDF-SHA256)."""
    dkp_prk = _labeled_extract(_KEM_SUITE, b"", b"dkp_prk", ikm)
    return X25519PrivateKey.from_private_bytes(_labeled_expand(_KEM_SUITE, dkp_prk, b"sk", b"", 32))


@dataclass(frozen=True)
class SenderContext:
    """A base-mode sender context and how it was made."""

    sk_e: bytes
    """The ephemeral private key (raw X25519)."""
    enc: bytes
    """The encapsulated key: the ephemeral public key, sent in the frame."""
    shared_secret: bytes
    key: bytes
    base_nonce: bytes

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """The first (and only) message of this context: ciphertext and tag."""
        return ChaCha20Poly1305(self.key).encrypt(self.base_nonce, plaintext, aad)


def setup_base_sender(pk_r: bytes, info: bytes, ikm_e: bytes | None = None) -> SenderContext:
    """``SetupBaseS(pkR, info)``. ``ikm_e`` fixes the ephemeral key (test
    vectors only); by default 32 bytes from the operating system's random
    source (``os.urandom``), never a user-space generator a forked process
    would copy (PROTOCOL §18).

    Raises ``ValueError`` for a recipient key that is not a usable X25519
    public key (one giving an all-zero shared secret).
    """
    if len(pk_r) != 32:
        raise ValueError("an X25519 public key is 32 bytes")
    sk = derive_key_pair(os.urandom(32) if ikm_e is None else ikm_e)
    enc = sk.public_key().public_bytes_raw()
    dh = sk.exchange(X25519PublicKey.from_public_bytes(pk_r))
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    shared = _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", enc + pk_r, _N_SECRET)
    context = (
        b"\x00"  # mode_base
        + _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
        + _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    )
    secret = _labeled_extract(_HPKE_SUITE, shared, b"secret", b"")
    return SenderContext(
        sk_e=sk.private_bytes_raw(),
        enc=enc,
        shared_secret=shared,
        key=_labeled_expand(_HPKE_SUITE, secret, b"key", context, _N_KEY),
        base_nonce=_labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, _N_NONCE),
    )
