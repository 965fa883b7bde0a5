"""Zone names and query names (PROTOCOL §5, §6, §19).

A zone is used in one canonical text form: ASCII, lower case, without the
trailing dot (an internationalized zone in its ``xn--`` A-labels). A frame
becomes the payload labels in front of it: base32 (RFC 4648 §6, no
padding, lower case), cut into the fewest labels of at most 63 characters,
as even as possible (the first ones one character longer). Names are always
absolute (a trailing dot), so that no search domain is ever appended.
"""

from __future__ import annotations

import base64

from .errors import ConfigError, ReportError

__all__ = ["canonical_zone", "payload_labels", "report_name", "policy_name", "MAX_NAME_CHARS"]

MAX_NAME_CHARS = 253
"""A name's text form without the final dot (RFC 1035's 255 bytes on the wire)."""
MAX_PAYLOAD_LABELS = 4
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def canonical_zone(zone: str) -> str:
    """The zone in canonical form; raises :class:`ConfigError` for a name
    that cannot be one (empty labels, non-ASCII, a label over 63)."""
    text = zone.strip().rstrip(".").lower()
    if not text:
        raise ConfigError("the zone is empty: give the delegated zone, e.g. vc.example.com")
    if not text.isascii():
        raise ConfigError(f"zone {zone!r} is not ASCII: give an internationalized zone in its xn-- form")
    for label in text.split("."):
        if not label or len(label) > 63 or not set(label) <= _LABEL_CHARS:
            raise ConfigError(f"zone {zone!r} is not a DNS name (labels of 1-63 letters, digits, '-')")
    if len(text) > MAX_NAME_CHARS:
        raise ConfigError(f"zone {zone!r} is longer than {MAX_NAME_CHARS} characters")
    return text


def payload_labels(frame: bytes) -> list[str]:
    """The frame as balanced base32 labels (§6 steps 1-2)."""
    text = base64.b32encode(frame).decode("ascii").rstrip("=").lower()
    count = -(-len(text) // 63)
    if not 1 <= count <= MAX_PAYLOAD_LABELS:
        raise ReportError(f"a frame of {len(frame)} bytes needs {count} labels (at most {MAX_PAYLOAD_LABELS})")
    base, extra = divmod(len(text), count)
    labels, pos = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        labels.append(text[pos : pos + size])
        pos += size
    return labels


def report_name(labels: list[str], zone: str) -> str:
    """``<label1>...<labelk>.<zone>.``; raises :class:`ReportError` when
    longer than 253 characters (without the final dot)."""
    name = ".".join(labels) + "." + zone
    if len(name) > MAX_NAME_CHARS:
        raise ReportError(
            f"the query name would have {len(name)} characters (at most {MAX_NAME_CHARS}): "
            f"use a shorter zone (PROTOCOL §19: up to 70 characters for versions of up to 18 bytes, 41 for longer ones)"
        )
    return name + "."


def policy_name(zone: str, key_id: int) -> str:
    """Where the zone's policy is served without a report: ``<key id>._policy.<zone>.``"""
    return f"{key_id}._policy.{zone}."
