"""One version check (PROTOCOL §21): build the report, resolve it, verify
the signed policy against the kept state, compute the status.

::

    client = Client("vc.example.com", "/usr/share/myproduct/vc.public", "2.3.1",
                    cluster_id=install_id, node_id=socket.gethostname())
    result = client.check()
    print(result.status.label, result.message)

Sending a report:

1. if the kept policy's epoch is accepted now, seal to its key with its
   suggested effort; otherwise (a first check, or more than a week since
   the last) ask TXT for ``<key id>._policy.<zone>.`` first and verify it;
2. build the plaintext, seal it, search the proof within the effort budget,
   and ask TXT for the report's name;
3. verify the policy in the answer; if the report's epoch is not accepted at
   the answer's ``issued`` (the kept key was too old for the server), seal
   the same report again to the answer's key and send it once more;
4. compute the status with the release rule, and save the state.

The administrator's switches are read from the environment at every
check: ``DISABLE_VERSION_CHECK`` sends nothing (:class:`CheckDisabled`),
``DISABLE_TELEMETRY`` sends no identity (flag bit 0, zero ids).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from collections.abc import Mapping, Sequence

from .dns import NameServer, Resolver
from .errors import CheckDisabled, ConfigError, StateError
from .keys import KeySource, PublicKey
from .names import canonical_zone, policy_name
from .policy import Policy, Seen, epoch_accepted, verify_answer
from .release import Status, Verdict
from .report import Identity, Report, anonymized_ids, build_report, cluster_secret
from .semver import RunningVersion, VersionSyntaxError
from .state import StateFile, default_state_path

__all__ = ["Client", "CheckResult", "DryRun", "LastKnown", "env_flag", "DEFAULT_EFFORT_BUDGET"]

DEFAULT_EFFORT_BUDGET = 0.25
"""Seconds of one core spent on the effort proof, at most (PROTOCOL §18)."""


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    """Whether an administrator's switch is set: present, non-empty after
    trimming, and not ``0``, ``false``, ``no`` or ``off`` (any case)."""
    value = environ.get(name, "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def verdict_json(status: Status, message: str, latest: str) -> dict[str, Any]:
    """The fields every status is shown with in JSON."""
    return {"status": int(status), "status_name": status.label, "message": message, "latest": latest}


def policy_json(policy: Policy) -> dict[str, Any]:
    """A verified policy's header, as ``vcheckd check --json`` shows it."""
    return {
        "key_id": policy.key_id,
        "serial": policy.serial,
        "issued": policy.issued,
        "expires": policy.expires,
        "epoch": policy.epoch,
        "effort": policy.effort,
        "advisory_url": policy.advisory_url,
        "latest": str(policy.latest),
    }


@dataclass(frozen=True)
class CheckResult:
    """A check that verified a fresh policy."""

    status: Status
    message: str
    latest: str
    running: str
    policy: Policy
    """The verified policy the status was computed from."""
    advisory_url: str | None
    """The advisory's URL when an advisory gave the status, else None."""
    report_id: str
    """The report's id (hex), as the server records it."""
    effort: int
    """The effort (bits) of the report's proof."""
    queries: int
    """DNS questions asked: 1, or 2 when the policy was fetched first (a
    truncated answer asked again over TCP counts once)."""
    anonymous: bool
    """Whether the report withheld the identity."""

    def to_json(self) -> dict[str, Any]:
        return {
            **verdict_json(self.status, self.message, self.latest),
            "running": self.running,
            "advisory_url": self.advisory_url,
            "report_id": self.report_id,
            "effort": self.effort,
            "queries": self.queries,
            "anonymous": self.anonymous,
            "protocol": 2,
            "policy": policy_json(self.policy),
        }


@dataclass(frozen=True)
class DryRun:
    """Exactly what a check would send, and the status the policy gives;
    the report itself is not sent."""

    report: Report
    policy: Policy
    verdict: Verdict
    fetched: bool
    """Whether the policy was fetched (``<key id>._policy.<zone>.``, which
    records no report) rather than taken from the state."""

    def to_json(self) -> dict[str, Any]:
        identity = self.report.identity
        return {
            "query_name": self.report.name,
            "protocol": 2,
            "report_id": self.report.report_id.hex(),
            "key_id": self.report.key_id,
            "epoch": self.report.epoch,
            "timestamp": self.report.timestamp,
            "cluster": identity.cluster.hex() if identity else None,
            "node": identity.node.hex() if identity else None,
            "version": self.report.version,
            "flags": self.report.flags,
            "effort": self.report.effort,
            "policy": policy_json(self.policy),
            "computed": verdict_json(self.verdict.status, self.verdict.message, str(self.policy.latest)),
        }


@dataclass(frozen=True)
class LastKnown:
    """What the last verified policy in the state says now (it may have
    expired: shown as old, never as current)."""

    status: Status
    message: str
    latest: str
    advisory_url: str | None
    issued: int
    expires: int
    serial: int

    def to_json(self) -> dict[str, Any]:
        return {
            **verdict_json(self.status, self.message, self.latest),
            "issued": self.issued,
            "expires": self.expires,
            "serial": self.serial,
        }


class Client:
    """A version check for one product in one zone.

    ``public_key`` is the zone's public key: a :class:`PublicKey`, a
    ``vck2-public:`` token, or a file holding one. ``cluster_id`` and
    ``node_id`` are the real ids (only keyed hashes are sent); leave both
    None to report anonymously. ``name_servers`` are ``HOST[:PORT]``
    strings (default: /etc/resolv.conf). ``state_path`` defaults as in
    :func:`~vcheckd_client.state.default_state_path`. ``effort_budget`` is
    in seconds of CPU time, ``timeout`` bounds each DNS question.
    ``environ`` is where the opt-out switches are read (default
    ``os.environ``), ``clock`` the wall clock (unix seconds).

    Thread-safe: checks of one client run one at a time.
    """

    def __init__(
        self,
        zone: str,
        public_key: KeySource,
        version: str,
        *,
        cluster_id: str | None = None,
        node_id: str | None = None,
        name_servers: Sequence[str | NameServer] | None = None,
        state_path: str | os.PathLike[str] | None = None,
        effort_budget: float = DEFAULT_EFFORT_BUDGET,
        timeout: float = 5.0,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.zone = canonical_zone(zone)
        self.key = PublicKey.load(public_key)
        try:
            self.running = RunningVersion.parse(version)
        except VersionSyntaxError as e:
            raise ConfigError(f"the running version: {e} (SemVer, e.g. 2.4.1 or 2.5.0-rc.1)") from None
        if (cluster_id is None) != (node_id is None):
            raise ConfigError("give both the cluster id and the node id, or neither (an anonymous report)")
        if effort_budget < 0:
            raise ConfigError("the effort budget cannot be negative")
        self.cluster_id, self.node_id = cluster_id, node_id
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.state = StateFile(state_path if state_path is not None else default_state_path(self.environ))
        self.resolver = Resolver(name_servers, timeout)
        self.effort_budget = effort_budget
        self.clock = clock
        self._secret: bytes | None = None
        self._lock = threading.Lock()

    @property
    def disabled(self) -> bool:
        """DISABLE_VERSION_CHECK is set: nothing is sent."""
        return env_flag(self.environ, "DISABLE_VERSION_CHECK")

    @property
    def anonymous(self) -> bool:
        """Reports withhold the identity: no ids given, or DISABLE_TELEMETRY."""
        return self.cluster_id is None or env_flag(self.environ, "DISABLE_TELEMETRY")

    def policy_name(self) -> str:
        """``<key id>._policy.<zone>.``: the policy, without a report."""
        return policy_name(self.zone, self.key.key_id)

    def _identity(self) -> Identity | None:
        if self.anonymous or self.cluster_id is None or self.node_id is None:
            return None
        if self._secret is None:  # Argon2id, 64 MiB: once per client
            self._secret = cluster_secret(self.zone, self.cluster_id)
        return anonymized_ids(self._secret, self.node_id)

    def _report(self, policy: Policy, timestamp: int, identity: Identity | None) -> Report:
        return build_report(
            zone=self.zone,
            key_id=self.key.key_id,
            epoch=policy.epoch,
            seal_key=policy.seal_key,
            timestamp=timestamp,
            version=self.running.text,
            identity=identity,
            effort_target=policy.effort,
            effort_budget=self.effort_budget,
        )

    def _verify(self, name: str, seen: Seen | None) -> tuple[Policy, Seen]:
        answer = self.resolver.query_txt(name)
        policy = verify_answer(answer.records, self.key, self.zone, self.clock(), seen)
        seen = seen or Seen()
        return policy, Seen(max(seen.serial, policy.serial), max(seen.issued, policy.issued))

    def _sealing_policy(self) -> tuple[Policy, Seen | None, bool]:
        """(policy to seal to, state, fetched?): the kept policy when its
        epoch is still accepted, else the one at the policy name."""
        kept = self.state.load(self.zone, self.key)
        if kept.policy is not None and epoch_accepted(kept.policy.epoch, self.clock()):
            return kept.policy, kept.seen, False
        policy, seen = self._verify(self.policy_name(), kept.seen)
        self.state.save(self.zone, self.key.key_id, seen, policy)
        return policy, seen, True

    def check(self) -> CheckResult:
        """Sends one report and returns the status from the verified policy.

        Raises :class:`CheckDisabled` (DISABLE_VERSION_CHECK), a
        :class:`~vcheckd_client.errors.DnsError` (timeout, network, an error
        code), :class:`~vcheckd_client.errors.PolicyError` (the policy was
        refused: ``reason``), :class:`StateError` or :class:`ReportError`.
        A failed check is never a status: see :meth:`last_known`."""
        with self._lock:
            if self.disabled:
                raise CheckDisabled("DISABLE_VERSION_CHECK is set; nothing sent")
            identity = self._identity()
            policy, seen, fetched = self._sealing_policy()
            queries = 2 if fetched else 1
            timestamp = int(self.clock())
            report = self._report(policy, timestamp, identity)
            verified, seen = self._verify(report.name, seen)
            if not epoch_accepted(report.epoch, verified.issued):
                # The kept key was too old for the server: not recorded.
                report = self._report(verified, timestamp, identity)
                verified, seen = self._verify(report.name, seen)
                queries += 1
            self.state.save(self.zone, self.key.key_id, seen, verified)
            verdict = verified.verdict(self.running)
            return CheckResult(
                status=verdict.status,
                message=verdict.message,
                latest=str(verified.latest),
                running=self.running.text,
                policy=verified,
                advisory_url=verdict.advisory_url,
                report_id=report.report_id.hex(),
                effort=report.effort,
                queries=queries,
                anonymous=identity is None,
            )

    def dry_run(self) -> DryRun:
        """The report a check would send now (name and plaintext), sealed
        to the kept policy or to one fetched from the policy name; nothing
        is reported."""
        with self._lock:
            if self.disabled:
                raise CheckDisabled("DISABLE_VERSION_CHECK is set; nothing sent")
            identity = self._identity()
            policy, _seen, fetched = self._sealing_policy()
            report = self._report(policy, int(self.clock()), identity)
            return DryRun(report, policy, policy.verdict(self.running), fetched)

    def last_known(self) -> LastKnown | None:
        """What the last verified policy in the state says about the running
        version, or None; nothing is sent."""
        try:
            kept = self.state.load(self.zone, self.key)
        except StateError:
            return None
        if kept.policy is None:
            return None
        verdict = kept.policy.verdict(self.running)
        return LastKnown(
            status=verdict.status,
            message=verdict.message,
            latest=str(kept.policy.latest),
            advisory_url=verdict.advisory_url,
            issued=kept.policy.issued,
            expires=kept.policy.expires,
            serial=kept.policy.serial,
        )

    @property
    def state_path(self) -> Path:
        return self.state.path
