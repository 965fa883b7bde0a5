"""A protocol v2 report, from the real ids to the query name
(PROTOCOL §17-§19).

::

    real cluster id --Argon2id(zone)--> cluster secret --HMAC--> anonymized ids --+
    timestamp, version, flags ----------------------------------------------------+-> plaintext, padded
    plaintext --HPKE seal to the week's key (from the signed policy)--> frame, + effort proof
    frame --base32, lower case, 3 or 4 labels--> <labels>.<zone>.

The cluster secret costs one Argon2id (64 MiB, 0.1-0.35 s of one core):
compute it once per process (:class:`~vcheckd_client.Client` does) and
derive the ids with two HMACs per report.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from . import hpke
from .errors import ReportError
from .names import payload_labels, report_name

__all__ = [
    "Identity",
    "cluster_salt",
    "cluster_secret",
    "anonymized_ids",
    "plaintext",
    "effort_of",
    "prove",
    "report_id",
    "Report",
    "build_report",
    "FORMAT",
    "PLAINTEXT_SIZES",
    "FLAG_WITHHELD",
]

FORMAT = 2
PLAINTEXT_SIZES = (56, 74)
"""Padded plaintext sizes: versions of up to 18 bytes, then up to 36."""
FLAG_WITHHELD = 0x01
"""Flag bit 0: identity withheld (both ids zero)."""
_HEADER = 38  # timestamp 4, flags 1, cluster 16, node 16, version length 1
_PROOF_BYTES = 4
_MAX_PROOF = 2**32 - 1


@dataclass(frozen=True)
class Identity:
    """The anonymized cluster and node ids (16 bytes each) a report carries."""

    cluster: bytes
    node: bytes


def cluster_salt(zone: str) -> bytes:
    """``SHA-256("vcheckd v2 cluster salt" 0x00 zone)[..16]``: two vendors
    (zones) cannot link one cluster's ids. ``zone`` in canonical form."""
    return hashlib.sha256(b"vcheckd v2 cluster salt\x00" + zone.encode("ascii")).digest()[:16]


def cluster_secret(zone: str, cluster_id: str) -> bytes:
    """Argon2id(cluster id, salt, t=3, m=64 MiB, p=1, 32 bytes): guessing a
    real cluster id back costs the operator one of these per guess."""
    return Argon2id(salt=cluster_salt(zone), length=32, iterations=3, lanes=1, memory_cost=65536).derive(
        cluster_id.encode("utf-8")
    )


def anonymized_ids(secret: bytes, node_id: str) -> Identity:
    """The ids sent, keyed by the cluster secret."""
    cluster = hmac.new(secret, b"vcheckd v2 cluster", hashlib.sha256).digest()[:16]
    node = hmac.new(secret, b"vcheckd v2 node\x00" + node_id.encode("utf-8"), hashlib.sha256).digest()[:16]
    return Identity(cluster, node)


def plaintext(timestamp: int, version: str, identity: Identity | None) -> bytes:
    """``timestamp | flags | cluster | node | version length | version | zeros``,
    padded to 56 or 74 bytes; without identity, flag bit 0 and zero ids."""
    if not 0 <= timestamp <= 0xFFFFFFFF:
        raise ReportError(f"timestamp {timestamp} does not fit 32 bits (the clock is past 2106 or before 1970)")
    try:
        raw = version.encode("ascii")
    except UnicodeEncodeError as e:
        raise ReportError(f"version {version!r} is not ASCII") from e
    size = next((s for s in PLAINTEXT_SIZES if _HEADER + len(raw) <= s), None)
    if size is None:
        raise ReportError(f"version {version!r} is {len(raw)} bytes; a report carries at most 36")
    if identity is None:
        flags, cluster, node = FLAG_WITHHELD, bytes(16), bytes(16)
    else:
        flags, cluster, node = 0, identity.cluster, identity.node
    body = struct.pack(">IB", timestamp, flags) + cluster + node + bytes([len(raw)]) + raw
    return body + bytes(size - len(body))


def _leading_zero_bits(digest: bytes) -> int:
    return len(digest) * 8 - int.from_bytes(digest, "big").bit_length()


def effort_of(frame: bytes) -> tuple[int, bytes]:
    """(effort, digest): the leading zero bits of
    ``SHA-256("vcheckd v2 effort" 0x00 || frame)``, the whole frame."""
    digest = hashlib.sha256(b"vcheckd v2 effort\x00" + frame).digest()
    return _leading_zero_bits(digest), digest


def prove(frame_without_proof: bytes, target: int, budget_seconds: float) -> tuple[int, int]:
    """(proof, effort): tries proofs 0, 1, 2, ... until one reaches
    ``target`` bits or ``budget_seconds`` of this thread's CPU time are
    spent, and returns the best found (the lowest proof of the highest
    effort). At least one proof is always tried."""
    head = hashlib.sha256(b"vcheckd v2 effort\x00" + frame_without_proof)
    deadline = time.thread_time() + max(0.0, budget_seconds)
    best_effort, best_proof = -1, 0
    proof = 0
    while True:
        h = head.copy()
        h.update(proof.to_bytes(_PROOF_BYTES, "big"))
        bits = _leading_zero_bits(h.digest())
        if bits > best_effort:
            best_effort, best_proof = bits, proof
            if bits >= target:
                break
        if proof == _MAX_PROOF or (proof & 1023 == 1023 and time.thread_time() > deadline):
            break
        proof += 1
    return best_proof, best_effort


def report_id(enc: bytes) -> bytes:
    """``SHA-256("vcheckd v2 report id" || enc)[..12]``: the same on every
    name server, computable before the frame is opened."""
    return hashlib.sha256(b"vcheckd v2 report id" + enc).digest()[:12]


@dataclass(frozen=True)
class Report:
    """One sealed report and every value it was made of."""

    zone: str
    key_id: int
    epoch: int
    timestamp: int
    version: str
    identity: Identity | None
    plaintext: bytes
    sender: hpke.SenderContext
    frame: bytes
    proof: int
    effort: int
    report_id: bytes
    labels: tuple[str, ...]
    name: str

    @property
    def flags(self) -> int:
        return FLAG_WITHHELD if self.identity is None else 0

    @property
    def frame_before_proof(self) -> bytes:
        """The frame as sealed, before the proof was chosen (proof bytes zero)."""
        return self.frame[:-_PROOF_BYTES] + bytes(_PROOF_BYTES)


def build_report(
    *,
    zone: str,
    key_id: int,
    epoch: int,
    seal_key: bytes,
    timestamp: int,
    version: str,
    identity: Identity | None,
    effort_target: int,
    effort_budget: float,
    ikm_e: bytes | None = None,
) -> Report:
    """Seals a report to ``seal_key`` (the key of ``epoch`` of ``key_id``,
    from a verified policy), searches its proof, and names it.

    ``zone`` in canonical form; ``ikm_e`` only for test vectors (the
    ephemeral key is otherwise fresh from the OS random source)."""
    if not 0 <= key_id <= 255 or not 0 <= epoch <= 0xFFFF:
        raise ReportError(f"key id {key_id} or epoch {epoch} out of range")
    header = struct.pack(">BBH", FORMAT, key_id, epoch)
    body = plaintext(timestamp, version, identity)
    try:
        sender = hpke.setup_base_sender(seal_key, b"vcheckd v2 report\x00" + zone.encode("ascii"), ikm_e)
    except ValueError as e:
        raise ReportError(f"the policy's seal key cannot be used: {e}") from e
    sealed = header + sender.enc + sender.seal(header, body)
    proof, effort = prove(sealed, effort_target, effort_budget)
    frame = sealed + proof.to_bytes(_PROOF_BYTES, "big")
    labels = payload_labels(frame)
    return Report(
        zone=zone,
        key_id=key_id,
        epoch=epoch,
        timestamp=timestamp,
        version=version,
        identity=identity,
        plaintext=body,
        sender=sender,
        frame=frame,
        proof=proof,
        effort=effort,
        report_id=report_id(sender.enc),
        labels=tuple(labels),
        name=report_name(labels, zone),
    )
