"""SemVer 2.0.0 versions as the release rule compares them.

A :class:`Version` is a *release*: major, minor, patch and pre-release
identifiers. Build metadata is never part of it (SemVer §10, PROTOCOL §11:
``2.4.1+build.7`` is the release ``2.4.1``); :class:`RunningVersion` keeps
the text a client runs, build metadata included, because that text is what
a report carries and what the "not a known release" message quotes.

Equality and ordering are SemVer precedence: a pre-release is below its
release, numeric identifiers compare numerically and below alphanumeric
ones, alphanumeric ones in ASCII order, and a shorter list of identifiers
is below a longer one it starts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Union

__all__ = ["Version", "RunningVersion", "parse_prerelease", "VersionSyntaxError"]

Identifier = Union[int, str]
Prerelease = tuple[Identifier, ...]

_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_DIGITS = frozenset("0123456789")


class VersionSyntaxError(ValueError):
    """Text that is not a SemVer 2.0.0 version or pre-release tag."""


def _numeric(text: str, what: str) -> int:
    if not text or not set(text) <= _DIGITS:
        raise VersionSyntaxError(f"{what} {text!r} is not a number")
    if len(text) > 1 and text[0] == "0":
        raise VersionSyntaxError(f"{what} {text!r} has a leading zero")
    return int(text)


def parse_prerelease(text: str) -> Prerelease:
    """The identifiers of a pre-release tag (``rc.1`` -> ``("rc", 1)``)."""
    out: list[Identifier] = []
    for ident in text.split("."):
        if not ident or not set(ident) <= _ALNUM:
            raise VersionSyntaxError(f"pre-release tag {text!r} is not SemVer")
        if set(ident) <= _DIGITS:
            out.append(_numeric(ident, "pre-release identifier"))
        else:
            out.append(ident)
    return tuple(out)


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A release, compared by SemVer precedence."""

    major: int
    minor: int
    patch: int
    pre: Prerelease = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """A release from SemVer text; build metadata is validated, then
        dropped."""
        return RunningVersion.parse(text).release

    def _key(self) -> tuple[int, int, int, bool, list[tuple[int, int, str]]]:
        return (
            self.major,
            self.minor,
            self.patch,
            not self.pre,
            [(0, i, "") if isinstance(i, int) else (1, 0, i) for i in self.pre],
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    @property
    def line(self) -> tuple[int, int]:
        """The release line, (MAJOR, MINOR)."""
        return (self.major, self.minor)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(str(i) for i in self.pre)
        return text


@dataclass(frozen=True)
class RunningVersion:
    """The version a client runs: its exact text (sent in the report) and
    the release it stands for (used by the release rule)."""

    text: str
    release: Version

    @classmethod
    def parse(cls, text: str) -> RunningVersion:
        """Strict SemVer 2.0.0; surrounding blanks and one leading ``v``
        (``v2.4.1``, a common tag form) are removed from the text sent."""
        text = text.strip()
        if text[:1] in ("v", "V"):
            text = text[1:]
        if not text.isascii():
            raise VersionSyntaxError(f"version {text!r} is not ASCII SemVer")
        rest, plus, build = text.partition("+")
        if plus:
            for ident in build.split("."):
                if not ident or not set(ident) <= _ALNUM:
                    raise VersionSyntaxError(f"build metadata of {text!r} is not SemVer")
        core, dash, pre = rest.partition("-")
        parts = core.split(".")
        if len(parts) != 3:
            raise VersionSyntaxError(f"version {text!r} is not MAJOR.MINOR.PATCH")
        major, minor, patch = (_numeric(p, "version part") for p in parts)
        return cls(text, Version(major, minor, patch, parse_prerelease(pre) if dash else ()))

    def __str__(self) -> str:
        return self.text
