"""The version-check agent: the same check run periodically, as every
vcheckd client runs it (docs/CLIENTS.md, "The agent contract").

- **Opt-out first.** DISABLE_VERSION_CHECK set: nothing is ever sent, the
  status is ``disabled``. DISABLE_TELEMETRY set: checks run without
  identity, ``anonymous: true`` in the status file.
- **Schedule.** The first check after a random delay, uniform in
  [0, startup_jitter] (default 300 s); then every ``interval`` (default
  86400 s) with ±10% jitter; a failed check is retried after 60 s, doubling
  per consecutive failure, capped at min(interval, 21600 s), each ±10%.
  Jitter comes from the operating system's random source.
- **Status.** ``up-to-date``, ``upgrade-available``, ``upgrade-required``,
  ``unknown`` from a verified policy. A failed check keeps the last status
  (sticky) unless the last verified policy has expired; then, and before any
  success, the status is ``stale``. Only a failed check (or the start, from
  the kept state) makes it stale: no timer runs to the policy's expiry.
- **Logging.** One line per change of status (warning for
  ``upgrade-required`` and ``stale``, info otherwise), one debug line per
  failure.
- **Files.** A JSON status file for GUIs and a Prometheus textfile
  (node_exporter's textfile collector), each written atomically after
  every check and when the agent stops.
- **Control.** :meth:`Agent.check_now` (SIGHUP) checks at once,
  :meth:`Agent.stop` (SIGTERM, SIGINT) ends :meth:`Agent.run` after
  writing the files.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable

from ._files import write_atomically
from .client import CheckResult, Client
from .errors import CheckDisabled, VcheckdError
from .policy import Policy
from .release import Status, Verdict

__all__ = [
    "Agent",
    "AgentStatus",
    "AgentSnapshot",
    "DEFAULT_INTERVAL",
    "DEFAULT_STARTUP_JITTER",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
    "JITTER",
]

DEFAULT_INTERVAL = 86_400.0
DEFAULT_STARTUP_JITTER = 300.0
DEFAULT_BACKOFF_INITIAL = 60.0
DEFAULT_BACKOFF_MAX = 21_600.0
JITTER = 0.10

log = logging.getLogger("vcheckd_client.agent")


class AgentStatus(str, enum.Enum):
    """What the agent shows: a verified status, or ``stale``, ``disabled``."""

    UNKNOWN = "unknown"
    UP_TO_DATE = "up-to-date"
    UPGRADE_AVAILABLE = "upgrade-available"
    UPGRADE_REQUIRED = "upgrade-required"
    STALE = "stale"
    DISABLED = "disabled"

    @classmethod
    def of(cls, status: Status) -> AgentStatus:
        return cls(status.label)

    @property
    def state(self) -> str:
        """The textfile's state label: ``ok``, ``stale`` or ``disabled``."""
        return self.value if self in (AgentStatus.STALE, AgentStatus.DISABLED) else "ok"


def rfc3339(t: float | None) -> str | None:
    """A unix time as RFC 3339 UTC (``2026-09-21T14:13:20Z``), or None."""
    if t is None:
        return None
    return datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AgentSnapshot:
    """The agent's state as the status file and the textfile show it."""

    zone: str
    running: str
    status: AgentStatus
    last_status: Status | None
    message: str
    latest: str | None
    advisory_url: str | None
    anonymous: bool
    checked_at: float | None
    last_success: float | None
    policy_expires: int | None
    next_check: float | None
    consecutive_failures: int
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """The status file's object (docs/CLIENTS.md, "The agent contract")."""
        return {
            "zone": self.zone,
            "running": self.running,
            "status": self.status.value,
            "last_status": self.last_status.label if self.last_status is not None else None,
            "status_code": int(self.last_status) if self.last_status is not None else None,
            "message": self.message,
            "latest": self.latest,
            "advisory_url": self.advisory_url,
            "anonymous": self.anonymous,
            "checked_at": rfc3339(self.checked_at),
            "last_success": rfc3339(self.last_success),
            "policy_expires": rfc3339(self.policy_expires),
            "next_check": rfc3339(self.next_check),
            "consecutive_failures": self.consecutive_failures,
            "error": self.error,
        }

    def to_textfile(self) -> str:
        """node_exporter's textfile-collector format."""
        zone = _label(self.zone)
        lines = []
        if self.last_status is not None:
            lines += [
                "# HELP vcheckd_version_status Status code of the last verified check: "
                "0 unknown, 1 up to date, 2 upgrade available, 3 upgrade required.",
                "# TYPE vcheckd_version_status gauge",
                f'vcheckd_version_status{{zone="{zone}",running="{_label(self.running)}",'
                f'latest="{_label(self.latest or "")}"}} {int(self.last_status)}',
            ]
        lines += [
            "# HELP vcheckd_version_check_state The agent's state: 1 for the current one.",
            "# TYPE vcheckd_version_check_state gauge",
        ]
        for state in ("ok", "stale", "disabled"):
            lines.append(
                f'vcheckd_version_check_state{{zone="{zone}",state="{state}"}} {int(self.status.state == state)}'
            )
        lines += [
            "# HELP vcheckd_version_check_last_success_timestamp_seconds When a policy was last verified.",
            "# TYPE vcheckd_version_check_last_success_timestamp_seconds gauge",
            f'vcheckd_version_check_last_success_timestamp_seconds{{zone="{zone}"}} {int(self.last_success or 0)}',
            "# HELP vcheckd_version_check_consecutive_failures Checks failed since the last success.",
            "# TYPE vcheckd_version_check_consecutive_failures gauge",
            f'vcheckd_version_check_consecutive_failures{{zone="{zone}"}} {self.consecutive_failures}',
        ]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Agent:
    """Runs ``client``'s check on the contract's schedule until stopped.

    ``status_file`` (JSON) and ``textfile`` (a ``.prom`` path) are written
    when given. The intervals are in seconds; tests shorten them.
    ``on_change`` is called (on the agent's thread) with the new snapshot
    after each change of status. ``rng`` draws the jitter (default: the OS
    random source).
    """

    def __init__(
        self,
        client: Client,
        *,
        status_file: str | os.PathLike[str] | None = None,
        textfile: str | os.PathLike[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        startup_jitter: float = DEFAULT_STARTUP_JITTER,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        on_change: Callable[[AgentSnapshot], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if interval <= 0 or startup_jitter < 0 or backoff_initial <= 0 or backoff_max <= 0:
            raise ValueError("intervals must be positive (startup jitter may be 0)")
        self.client = client
        self.status_file = Path(status_file) if status_file is not None else None
        self.textfile = Path(textfile) if textfile is not None else None
        self.interval = interval
        self.startup_jitter = startup_jitter
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_change = on_change
        self.rng = rng if rng is not None else random.SystemRandom()
        self._wake = threading.Event()
        self._stopping = False
        self._now_requested = False
        self._mutex = threading.RLock()  # on_change may call snapshot()
        self._status: AgentStatus | None = None
        self._verdict: Verdict | None = None
        self._policy: Policy | None = None
        self._checked_at: float | None = None
        self._last_success: float | None = None
        self._next_check: float | None = None
        self._failures = 0
        self._error: str | None = None
        self._anonymous = client.anonymous
        if not client.disabled:
            self._restore()

    def _restore(self) -> None:
        """Picks up the last verified policy the client state keeps, so that
        a restarted agent keeps its status (sticky) and a failed first check
        does not turn it into ``stale`` while that policy is fresh. Stale at
        once if it has expired. Not a change of status: nothing is logged."""
        try:
            kept = self.client.state.load(self.client.zone, self.client.key)
        except VcheckdError:
            return
        if kept.policy is None:
            return
        self._policy = kept.policy
        self._verdict = kept.policy.verdict(self.client.running)
        if self.client.clock() >= kept.policy.expires:
            self._status = AgentStatus.STALE
        else:
            self._status = AgentStatus.of(self._verdict.status)

    # -- schedule -------------------------------------------------------

    def _jittered(self, seconds: float) -> float:
        return seconds * (1.0 + self.rng.uniform(-JITTER, JITTER))

    def startup_delay(self) -> float:
        """Uniform in [0, startup_jitter]."""
        return self.rng.uniform(0.0, self.startup_jitter)

    def delay_after(self, failures: int) -> float:
        """The wait before the next check: ``interval`` ±10% after a
        success (``failures`` 0), else the backoff for that many
        consecutive failures, ±10%."""
        if failures <= 0:
            return self._jittered(self.interval)
        cap = min(self.interval, self.backoff_max)
        return self._jittered(min(self.backoff_initial * 2.0 ** min(failures - 1, 64), cap))

    # -- control ----------------------------------------------------------

    def check_now(self) -> None:
        """Runs a check at once (what SIGHUP does); safe from any thread and
        from a signal handler."""
        self._now_requested = True
        self._wake.set()

    def stop(self) -> None:
        """Ends :meth:`run` after the check in progress, if any, and after
        writing the files (what SIGTERM and SIGINT do)."""
        self._stopping = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        """SIGHUP checks now; SIGTERM and SIGINT stop. Call it from the main
        thread (Python delivers signals there only)."""

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.check_now()

        def on_term(_signum: int, _frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGHUP, on_hup)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)

    # -- the loop -----------------------------------------------------------

    def snapshot(self) -> AgentSnapshot | None:
        """The current state, or None before the first check (when the
        client state keeps no verified policy)."""
        with self._mutex:
            return self._snapshot()

    def _snapshot(self) -> AgentSnapshot | None:
        if self._status is None:
            return None
        verdict, policy = self._verdict, self._policy
        if self._status is AgentStatus.DISABLED:
            message = "DISABLE_VERSION_CHECK is set; nothing sent"
        elif verdict is not None:
            message = verdict.message
        else:
            message = "no policy verified yet"
        return AgentSnapshot(
            zone=self.client.zone,
            running=self.client.running.text,
            status=self._status,
            last_status=verdict.status if verdict is not None else None,
            message=message,
            latest=str(policy.latest) if policy is not None else None,
            advisory_url=verdict.advisory_url if verdict is not None else None,
            anonymous=self._anonymous,
            checked_at=self._checked_at,
            last_success=self._last_success,
            policy_expires=policy.expires if policy is not None else None,
            next_check=self._next_check,
            consecutive_failures=self._failures,
            error=self._error,
        )

    def run(self) -> None:
        """Checks on schedule until :meth:`stop`; blocks the calling thread."""
        delay = 0.0 if self.client.disabled else self.startup_delay()
        self._schedule(delay)
        while True:
            self._sleep(delay)
            if self._stopping:
                break
            self._now_requested = False
            failures = self.run_once()
            delay = self.interval if self._status is AgentStatus.DISABLED else self.delay_after(failures)
            self._schedule(delay)
            if failures:
                log.debug("version check failed (%d in a row): %s; next try in %.1f s", failures, self._error, delay)
            self.write_files()
        self.write_files()

    def _schedule(self, delay: float) -> None:
        with self._mutex:
            self._next_check = self.client.clock() + delay

    def _sleep(self, delay: float) -> None:
        """Until ``delay`` seconds have passed, or stop or check now. The
        status turns stale at a failed check only, never on a timer."""
        until = time.monotonic() + delay
        while not self._stopping and not self._now_requested:
            left = until - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(left)
            self._wake.clear()

    def run_once(self) -> int:
        """One check now, with its effect on the status (the files are
        written by :meth:`write_files`); returns the number of consecutive
        failures after it. :meth:`run` calls it on schedule."""
        now = self.client.clock()
        try:
            result: CheckResult | None = self.client.check()
            error: Exception | None = None
        except CheckDisabled:
            with self._mutex:
                self._checked_at = now
                self._anonymous = self.client.anonymous
                self._set_status(AgentStatus.DISABLED)
            return 0
        except VcheckdError as e:
            result, error = None, e
        except Exception as e:  # a bug must not end the checks: a failure like any other
            log.debug("version check raised %r", e, exc_info=True)
            result, error = None, e
        with self._mutex:
            self._checked_at = now
            self._anonymous = self.client.anonymous
            if result is not None:
                self._verdict = result.policy.verdict(self.client.running)
                self._policy = result.policy
                self._last_success = self.client.clock()
                self._failures = 0
                self._error = None
                self._set_status(AgentStatus.of(result.status))
            else:
                self._failures += 1
                self._error = str(error)
                expired = self._policy is None or self.client.clock() >= self._policy.expires
                if expired:
                    self._set_status(AgentStatus.STALE)
                elif self._status in (None, AgentStatus.DISABLED):
                    assert self._verdict is not None
                    self._set_status(AgentStatus.of(self._verdict.status))
            return self._failures

    def _set_status(self, status: AgentStatus) -> None:
        """Under the mutex. Logs and notifies a change only."""
        if status is self._status:
            return
        self._status = status
        snapshot = self._snapshot()
        assert snapshot is not None
        level = logging.WARNING if status in (AgentStatus.UPGRADE_REQUIRED, AgentStatus.STALE) else logging.INFO
        if status is AgentStatus.STALE:
            last = (
                f"last verified: {snapshot.last_status.label}"
                if snapshot.last_status is not None
                else "none verified yet"
            )
            text = f"no fresh policy ({last}): {self._error}"
        elif status is AgentStatus.DISABLED:
            text = snapshot.message
        else:
            text = f"running {snapshot.running}, latest {snapshot.latest}: {snapshot.message}"
        log.log(level, "version check for %s: %s (%s)", snapshot.zone, status.value, text)
        if self.on_change is not None:
            try:
                self.on_change(snapshot)
            except Exception:  # a GUI's callback must not stop the checks
                log.exception("the on_change callback failed")

    def write_files(self) -> None:
        """Writes the status file and the textfile (atomically); a failure
        is logged and tried again after the next check."""
        snapshot = self.snapshot()
        if snapshot is None:
            return
        targets = []
        if self.status_file is not None:
            targets.append((self.status_file, json.dumps(snapshot.to_json(), indent=2) + "\n"))
        if self.textfile is not None:
            targets.append((self.textfile, snapshot.to_textfile()))
        for path, text in targets:
            try:
                write_atomically(path, text)
            except OSError as e:
                log.warning("cannot write %s: %s", path, e)
