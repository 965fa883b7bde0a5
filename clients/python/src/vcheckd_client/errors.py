"""The exceptions of the client: one base class, and a subclass per way a
check can fail, so that callers (and the command line's exit codes) can tell
a network problem from a refused policy.

Every exception's text is one line that names the thing and, where there is
one, the fix.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "VcheckdError",
    "ConfigError",
    "CheckDisabled",
    "ReportError",
    "StateError",
    "PolicyError",
    "PolicyReason",
    "POLICY_REASONS",
    "DnsError",
    "DnsTimeout",
    "DnsNetworkError",
    "DnsRcodeError",
    "rcode_name",
]


class VcheckdError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(VcheckdError):
    """A wrong argument: a key token, zone, version or path that cannot be
    used. Fixing the caller's configuration fixes it; retrying does not."""


class CheckDisabled(VcheckdError):
    """DISABLE_VERSION_CHECK is set: nothing was sent (docs/PROTOCOL.md §7)."""


class ReportError(VcheckdError):
    """A report that cannot be built: a version longer than 36 bytes, a zone
    too long for the name, a clock past 2106 (docs/PROTOCOL.md §18, §19)."""


class StateError(VcheckdError):
    """The client state (newest policy accepted, PROTOCOL §21) cannot be
    read or saved. A check whose state is not saved counts as failed: a lost
    state would let a replayed policy in next time."""


PolicyReason = Literal[
    "missing",
    "malformed",
    "unknown_key",
    "signature",
    "validity",
    "expired",
    "replayed",
    "rollback",
]
"""Why a policy was refused: the names of docs/vectors/v2.json's
``invalid_policies`` errors, plus ``missing`` (no ``v=vc2`` TXT record)."""

POLICY_REASONS: tuple[PolicyReason, ...] = get_args(PolicyReason)
"""Every reason, in the order of the checks (PROTOCOL §21)."""


class PolicyError(VcheckdError):
    """The answer's policy was refused (docs/PROTOCOL.md §21, "Verifying a
    policy"). ``reason`` is one of :data:`POLICY_REASONS`."""

    def __init__(self, reason: PolicyReason, text: str) -> None:
        super().__init__(text)
        self.reason: PolicyReason = reason


class DnsError(VcheckdError):
    """The DNS exchange failed. ``server`` is the last name server asked
    (``host:port``), or None when there was none to ask."""

    def __init__(self, text: str, server: str | None = None) -> None:
        super().__init__(text)
        self.server = server


class DnsTimeout(DnsError):
    """No name server answered in time."""


class DnsNetworkError(DnsError):
    """A name server could not be reached (connection refused, no route)."""


_RCODE_NAMES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
    16: "BADVERS",
}


def rcode_name(rcode: int) -> str:
    """The mnemonic of a DNS response code (RFC 6895), e.g. 2 -> SERVFAIL."""
    return _RCODE_NAMES.get(rcode, f"RCODE{rcode}")


class DnsRcodeError(DnsError):
    """A name server answered with an error code. ``rcode`` is the number
    (2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, ...), ``rcode_name`` its name."""

    def __init__(self, rcode: int, server: str, hint: str = "") -> None:
        text = f"{server} answered {rcode_name(rcode)}"
        if hint:
            text += f": {hint}"
        super().__init__(text, server)
        self.rcode = rcode

    @property
    def rcode_name(self) -> str:
        return rcode_name(self.rcode)
