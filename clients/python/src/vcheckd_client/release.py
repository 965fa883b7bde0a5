"""The release rule (PROTOCOL §11, §21): from a zone's releases and the
running version, the status and the message a client shows.

The first rule that applies wins:

1. the running version's line is end of life: status 3;
2. an advisory affects it (tried in the policy's order): status 3, with the
   advisory's URL when the policy has one;
3. it is not a listed release (build metadata ignored): status 0;
4. it is below ``latest``: status 2;
5. otherwise: status 1, up to date.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .semver import RunningVersion, Version

__all__ = ["Status", "EndOfLife", "Advisory", "Releases", "Verdict"]


class Status(enum.IntEnum):
    """The status codes of PowerDNS security polling (PROTOCOL §8.4)."""

    UNKNOWN = 0
    """The running version is not a listed release."""
    UP_TO_DATE = 1
    UPGRADE_AVAILABLE = 2
    UPGRADE_REQUIRED = 3
    """A security fix or end of life: do not stay on this version."""

    @property
    def label(self) -> str:
        """``unknown``, ``up-to-date``, ``upgrade-available``, ``upgrade-required``."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> Status:
        return cls[label.upper().replace("-", "_")]


@dataclass(frozen=True)
class EndOfLife:
    """A release line no longer maintained: ``MAJOR`` (minor None) or
    ``MAJOR.MINOR``."""

    major: int
    minor: int | None

    def covers(self, version: Version) -> bool:
        return version.major == self.major and self.minor in (None, version.minor)

    def __str__(self) -> str:
        return f"{self.major}" if self.minor is None else f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class Advisory:
    """A security advisory: its id and the first fixed version on each
    maintained line (at least one)."""

    id: str
    fixed: tuple[Version, ...]

    def fix_for(self, version: Version) -> Version | None:
        """The version to upgrade to if this advisory affects ``version``:
        it is below the newest fix and no fix on its own line is at or
        below it. The fix on its line above it if there is one, else the
        newest fix."""
        fixed = sorted(self.fixed)
        own_line = [f for f in fixed if f.line == version.line]
        if not version < fixed[-1] or any(f <= version for f in own_line):
            return None
        above = [f for f in own_line if f > version]
        return above[0] if above else fixed[-1]


@dataclass(frozen=True)
class Verdict:
    """What the release rule says about one running version."""

    status: Status
    message: str
    advisory: Advisory | None = None
    """The advisory that gave status 3, if one did."""
    advisory_url: str | None = None
    """That advisory's URL (the policy's template with its id), if any."""


@dataclass(frozen=True)
class Releases:
    """A zone's release list as the signed policy carries it. ``versions``
    ascending without duplicates; end-of-life lines and advisories in the
    operator's configuration order (the order the rule tries them)."""

    versions: tuple[Version, ...]
    end_of_life: tuple[EndOfLife, ...] = ()
    advisories: tuple[Advisory, ...] = ()

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError("a release list holds at least one version")
        object.__setattr__(self, "versions", tuple(sorted(set(self.versions))))

    @property
    def latest(self) -> Version:
        """The highest release without a pre-release part, or the highest
        release if all are pre-releases."""
        stable = [v for v in self.versions if not v.pre]
        return (stable or list(self.versions))[-1]

    def verdict(self, running: RunningVersion, advisory_url: str | None = None) -> Verdict:
        """The release rule for ``running``; ``advisory_url`` is the
        policy's template (``{id}`` replaced by the advisory's id)."""
        v, latest = running.release, self.latest
        for line in self.end_of_life:
            if line.covers(v):
                return Verdict(Status.UPGRADE_REQUIRED, f"{line} is end of life; upgrade to {latest}")
        for advisory in self.advisories:
            fix = advisory.fix_for(v)
            if fix is not None:
                message = f"security fix {advisory.id} in {fix}"
                url = advisory_url.replace("{id}", advisory.id) if advisory_url else None
                if url:
                    message += ": " + url
                return Verdict(Status.UPGRADE_REQUIRED, message, advisory, url)
        if v not in self.versions:
            return Verdict(Status.UNKNOWN, f"{running.text} is not a known release; latest is {latest}")
        if v < latest:
            return Verdict(Status.UPGRADE_AVAILABLE, f"{latest} is available")
        return Verdict(Status.UP_TO_DATE, "up to date")
