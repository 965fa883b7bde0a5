"""The zone's signed policy (PROTOCOL §20) and how a client verifies it
(§21).

Wire form, integers big-endian::

    format (1) = 0x02 | key id (1) | serial (4) | issued (8) | expires (8)
    | epoch (2) | seal key (32) | effort (1) | advisory URL length (1) | URL
    | releases (compact form) | Ed25519 signature (64)

signed over ``"vcheckd v2 policy" 0x00 zone 0x00`` and every byte before
the signature. It travels as a TXT record whose first string is ``v=vc2``
and whose other strings, concatenated, are the wire form.

Verification is in §21's order, and the first failure gives the
:class:`~vcheckd_client.errors.PolicyError` reason: ``missing``,
``malformed`` (too short, format), ``unknown_key``, ``signature``,
``malformed`` (the rest), ``validity``, ``expired``, ``replayed``,
``rollback``. Nothing but the signature check is done on unsigned bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from collections.abc import Sequence

from .errors import PolicyError
from .keys import PublicKey
from .release import Advisory, EndOfLife, Releases, Verdict
from .semver import RunningVersion, Version, VersionSyntaxError, parse_prerelease

__all__ = [
    "Policy",
    "Seen",
    "TXT_MARKER",
    "decode_policy",
    "verify_txt",
    "verify_answer",
    "from_txt_strings",
    "epoch_of",
    "epoch_accepted",
    "EPOCH_SECS",
    "SKEW_SECS",
    "MAX_VALIDITY_SECS",
]

TXT_MARKER = b"v=vc2"
EPOCH_SECS = 604_800
"""A week: ``epoch(t) = floor(t / 604800)``."""
SKEW_SECS = 7_200
"""Two grid steps: how much older than the newest accepted a policy may be."""
MAX_VALIDITY_SECS = 691_200
"""Eight days: no policy is valid for longer."""
_FIXED = 57  # format .. effort
_SIGNATURE = 64
_MIN_WIRE = _FIXED + 1 + _SIGNATURE
_CONTEXT = b"vcheckd v2 policy\x00"


def epoch_of(t: float) -> int:
    """The week number of a unix time (weeks since 1970, Thursdays 00:00 UTC)."""
    return int(t // EPOCH_SECS)


def epoch_accepted(epoch: int, t: float) -> bool:
    """Whether a name server at time ``t`` accepts a frame sealed to
    ``epoch``: ``epoch(t) - 1`` through ``epoch(t) + 1``."""
    return abs(epoch - epoch_of(t)) <= 1


@dataclass(frozen=True)
class Seen:
    """The newest serial and the newest ``issued`` a client accepted for one
    zone and key id."""

    serial: int = 0
    issued: int = 0


@dataclass(frozen=True)
class Policy:
    """A policy whose signature and form were verified."""

    zone: str
    key_id: int
    serial: int
    issued: int
    expires: int
    epoch: int
    seal_key: bytes
    """The X25519 public key of ``epoch``: reports are sealed to it."""
    effort: int
    """The suggested effort in bits."""
    advisory_url: str | None
    """The advisory URL template, holding ``{id}`` once, or None."""
    releases: Releases
    wire: bytes

    @property
    def latest(self) -> Version:
        return self.releases.latest

    def verdict(self, running: RunningVersion) -> Verdict:
        """The release rule for the running version."""
        return self.releases.verdict(running, self.advisory_url)

    def check_fresh(self, now: float, seen: Seen | None) -> None:
        """§21 checks 6-8 against the kept state; raises PolicyError."""
        seen = seen or Seen()
        t = max(now, seen.issued)  # a clock behind never revives a superseded policy
        if t >= self.expires:
            clock = "" if now >= seen.issued else f" (this host's clock says {int(now)}, behind a policy already seen)"
            raise PolicyError(
                "expired",
                f"policy expired at {self.expires} (unix), checked at {int(t)}{clock}: "
                "a stale name server, a replayed answer, or this host's clock (check it)",
            )
        if self.issued + SKEW_SECS < seen.issued:
            raise PolicyError(
                "replayed",
                f"policy issued at {self.issued} is older than one accepted before ({seen.issued}): a replayed answer",
            )
        if self.serial < seen.serial:
            raise PolicyError(
                "rollback",
                f"policy serial {self.serial} is lower than serial {seen.serial} accepted before: a replayed answer",
            )


class _Reader:
    """Reads the compact release list; every shortfall is ``malformed``."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _byte(self) -> int:
        if self.pos >= len(self.data):
            raise PolicyError("malformed", "policy is malformed: the release list is truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        n = 0
        for shift in range(0, 70, 7):
            b = self._byte()
            n |= (b & 0x7F) << shift
            if n >= 1 << 64:
                raise PolicyError("malformed", "policy is malformed: a number over 64 bits")
            if not b & 0x80:
                return n
        raise PolicyError("malformed", "policy is malformed: a number longer than 10 bytes")

    def count(self) -> int:
        n = self.varint()
        if n > len(self.data) - self.pos:
            raise PolicyError("malformed", "policy is malformed: a count larger than the bytes left")
        return n

    def text(self) -> str:
        n = self.count()
        raw = self.data[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("malformed", "policy is malformed: a text that is not UTF-8") from None

    def version(self) -> Version:
        major, minor, patch = self.varint(), self.varint(), self.varint()
        pre: tuple[int | str, ...] = ()
        if patch & 1:
            try:
                pre = parse_prerelease(self.text())
            except VersionSyntaxError as e:
                raise PolicyError("malformed", f"policy is malformed: {e}") from None
        return Version(major, minor, patch >> 1, pre)

    def at_end(self) -> bool:
        return self.pos == len(self.data)


def _advisory_url(raw: bytes) -> str | None:
    if not raw:
        return None
    try:
        url = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("malformed", "policy is malformed: the advisory URL is not UTF-8") from None
    if (
        not url.startswith(("https://", "http://"))
        or url.count("{id}") != 1
        or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url)
    ):
        raise PolicyError("malformed", f"policy is malformed: advisory URL {url!r} (http(s), {{id}} once, no spaces)")
    return url


def _releases(data: bytes) -> Releases:
    r = _Reader(data)
    versions = [r.version() for _ in range(r.count())]
    if not versions:
        raise PolicyError("malformed", "policy is malformed: an empty release list")
    eol = []
    for _ in range(r.count()):
        major, minor = r.varint(), r.varint()
        eol.append(EndOfLife(major, minor - 1 if minor else None))
    advisories = []
    for _ in range(r.count()):
        adv_id, fixed = r.text(), []
        for _ in range(r.count()):
            index = r.varint()
            if index < len(versions):
                fixed.append(versions[index])
            elif index == len(versions):
                fixed.append(r.version())
            else:
                raise PolicyError("malformed", f"policy is malformed: fix index {index} past the release list")
        if not fixed:
            raise PolicyError("malformed", f"policy is malformed: advisory {adv_id!r} has no fix")
        advisories.append(Advisory(adv_id, tuple(fixed)))
    if not r.at_end():
        raise PolicyError("malformed", "policy is malformed: bytes after the advisories")
    return Releases(tuple(versions), tuple(eol), tuple(advisories))


def decode_policy(wire: bytes, key: PublicKey, zone: str) -> Policy:
    """§21 checks 2-5 (form, key id, signature, the rest of the form,
    validity): everything that does not depend on the clock or the state.
    ``zone`` in canonical form."""
    if len(wire) < _MIN_WIRE:
        raise PolicyError("malformed", f"policy is malformed: {len(wire)} bytes, at least {_MIN_WIRE} expected")
    if wire[0] != 2:
        raise PolicyError("malformed", f"policy is malformed: format {wire[0]}, expected 2")
    if wire[1] != key.key_id:
        raise PolicyError(
            "unknown_key",
            f"policy signed with key id {wire[1]}, this client carries key id {key.key_id}: "
            "ship the zone's current public key",
        )
    body, signature = wire[:-_SIGNATURE], wire[-_SIGNATURE:]
    if not key.verify(signature, _CONTEXT + zone.encode("ascii") + b"\x00" + body):
        raise PolicyError(
            "signature",
            f"policy signature does not verify under key id {key.key_id} for zone {zone}: "
            "altered on the way, forged, or not this zone's key",
        )
    serial, issued, expires, epoch = struct.unpack(">IQQH", body[2:24])
    seal_key, effort, url_len = body[24:56], body[56], body[57]
    url_raw = body[58 : 58 + url_len]
    if len(url_raw) != url_len:
        raise PolicyError("malformed", "policy is malformed: the advisory URL is truncated")
    url = _advisory_url(url_raw)
    releases = _releases(body[58 + url_len :])
    if not issued < expires <= issued + MAX_VALIDITY_SECS:
        raise PolicyError(
            "validity",
            f"policy valid from {issued} to {expires} (unix): more than eight days, or none; a misconfigured server",
        )
    return Policy(zone, wire[1], serial, issued, expires, epoch, bytes(seal_key), effort, url, releases, bytes(wire))


def from_txt_strings(strings: Sequence[bytes]) -> bytes | None:
    """The wire form of one TXT record, or None when it is not a v2 policy
    (its first string is not exactly ``v=vc2``)."""
    if not strings or bytes(strings[0]) != TXT_MARKER:
        return None
    return b"".join(bytes(s) for s in strings[1:])


def verify_txt(strings: Sequence[bytes], key: PublicKey, zone: str, now: float, seen: Seen | None) -> Policy:
    """All of §21's checks on one TXT record's strings."""
    wire = from_txt_strings(strings)
    if wire is None:
        raise PolicyError("missing", "no vcheckd v2 policy in the answer (a TXT record starting v=vc2)")
    policy = decode_policy(wire, key, zone)
    policy.check_fresh(now, seen)
    return policy


def verify_answer(
    records: Sequence[Sequence[bytes]], key: PublicKey, zone: str, now: float, seen: Seen | None
) -> Policy:
    """The first TXT record of an answer that verifies; records not starting
    with ``v=vc2`` are ignored. When none verifies, the first refusal."""
    first: PolicyError | None = None
    for strings in records:
        if from_txt_strings(strings) is None:
            continue
        try:
            return verify_txt(strings, key, zone, now, seen)
        except PolicyError as e:
            first = first or e
    if first is not None:
        raise first
    raise PolicyError(
        "missing",
        f"no vcheckd v2 policy in the answer (a TXT record starting v=vc2): is {zone} delegated to vcheckd?",
    )
