"""The agent (docs/CLIENTS.md, "The agent contract"): jitter bounds, backoff, sticky and stale
status, disabled, the status file and the textfile, with a real vcheckd
that goes away and comes back (intervals shortened by options)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from vcheckd_client import Agent, Client

from .support import ZONE, Proxy, VcheckdServer, silent_socket

KEY = "vck2-public:5:" + "11" * 32


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def offline_client(tmp_path: Path, **kw: Any) -> Client:
    kw.setdefault("environ", {})
    return Client(ZONE, KEY, "2.4.1", name_servers=["127.0.0.1:53"], state_path=tmp_path / "s.json", **kw)


def test_jitter_and_backoff_stay_in_their_bounds(tmp_path: Path) -> None:
    agent = Agent(offline_client(tmp_path))  # the defaults, the OS random source
    starts = [agent.startup_delay() for _ in range(2000)]
    assert all(0 <= d <= 300 for d in starts)
    assert min(starts) < 30 and max(starts) > 270, "spread over the whole window"
    intervals = [agent.delay_after(0) for _ in range(2000)]
    assert all(86400 * 0.9 <= d <= 86400 * 1.1 for d in intervals)
    assert min(intervals) < 86400 * 0.92 and max(intervals) > 86400 * 1.08
    # 60 s, doubling per consecutive failure, capped at min(interval, 21600).
    for failures, base in [(1, 60), (2, 120), (3, 240), (8, 7680), (9, 15360), (10, 21600), (50, 21600), (5000, 21600)]:
        delays = [agent.delay_after(failures) for _ in range(500)]
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays), (failures, min(delays), max(delays))
        assert max(delays) - min(delays) > base * 0.1, "each with its own jitter"
    short = Agent(offline_client(tmp_path), interval=600)
    assert all(540 <= short.delay_after(5) <= 660 for _ in range(200)), "capped at the interval"


def read_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


class Running:
    """An agent on a thread, with its status lines captured."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.thread = threading.Thread(target=agent.run, daemon=True)
        self.thread.start()

    def files_show(self, predicate: Callable[[dict[str, Any]], bool]) -> Callable[[], bool]:
        """Whether both files are written and the status file's object
        satisfies ``predicate`` (the textfile is written just after it)."""
        status_file, textfile = self.agent.status_file, self.agent.textfile

        def check() -> bool:
            if status_file is None or not status_file.exists() or (textfile is not None and not textfile.exists()):
                return False
            doc = read_json(status_file)
            return predicate(doc) and (
                textfile is None
                or f'consecutive_failures{{zone="{ZONE}"}} {doc["consecutive_failures"]}\n' in textfile.read_text()
            )

        return check

    def stop(self) -> None:
        self.agent.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the agent did not stop"


def status_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "vcheckd_client.agent" and "version check for" in r.getMessage()
    ]


def test_a_server_that_goes_away_and_comes_back(
    server: VcheckdServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vcheckd_client.agent")
    offset = [0.0]
    proxy = Proxy(server.address)
    client = Client(
        ZONE,
        server.folder.parent / "keys" / "v5.public",
        "2.3.0",
        cluster_id="cluster-a",
        node_id="node-1",
        name_servers=[proxy.address],
        state_path=tmp_path / "state.json",
        timeout=0.5,
        environ={},
        clock=lambda: time.time() + offset[0],
    )
    status_file, textfile = tmp_path / "out" / "status.json", tmp_path / "out" / "vcheckd.prom"
    agent = Agent(
        client,
        status_file=status_file,
        textfile=textfile,
        interval=3600,
        startup_jitter=0.5,
        backoff_initial=0.2,
        backoff_max=1.6,
    )
    running = Running(agent)
    try:
        wait_for("a first check", running.files_show(lambda d: True))
        doc = read_json(status_file)
        assert doc["status"] == "upgrade-required" and doc["last_status"] == "upgrade-required"
        assert doc["status_code"] == 3 and doc["latest"] == "2.4.1" and doc["running"] == "2.3.0"
        assert doc["message"] == "security fix CVE-2026-0001 in 2.3.1: https://vendor.example/security/CVE-2026-0001"
        assert doc["advisory_url"] == "https://vendor.example/security/CVE-2026-0001"
        assert (doc["zone"], doc["anonymous"], doc["consecutive_failures"], doc["error"]) == (ZONE, False, 0, None)
        assert doc["checked_at"].endswith("Z") and doc["last_success"].endswith("Z") and doc["next_check"].endswith("Z")
        snap = agent.snapshot()
        assert snap is not None and snap.policy_expires is not None and snap.last_success is not None
        assert snap.next_check is not None
        # Scheduled after the success: interval ±10%, plus the moment between
        # the two clock readings (the bounds themselves: test_jitter_...).
        assert 3600 * 0.9 <= snap.next_check - snap.last_success <= 3600 * 1.1 + 60
        assert textfile.read_text() == expected_textfile(
            status=3, state="ok", last_success=int(snap.last_success), failures=0
        )
        policy_expires = snap.policy_expires

        # The server goes away: failures back off, the status sticks.
        server.stop()
        agent.check_now()
        wait_for("five failures", running.files_show(lambda d: d["consecutive_failures"] >= 5))
        doc = read_json(status_file)
        assert doc["status"] == "upgrade-required", "sticky while the last policy is fresh"
        assert "no answer" in (doc["error"] or ""), doc
        retries = [r.getMessage() for r in caplog.records if "version check failed" in r.getMessage()]
        for n, line in enumerate(retries[:5], start=1):
            assert f"({n} in a row)" in line, line
            delay = float(line.rsplit("next try in ", 1)[1].split()[0])
            base = min(0.2 * 2 ** (n - 1), 1.6)
            assert base * 0.9 - 0.05 <= delay <= base * 1.1 + 0.05, (n, delay)
        assert all(r.levelno == logging.DEBUG for r in caplog.records if "version check failed" in r.getMessage())

        # Its policy expires with no fresh one: stale, the last status kept.
        offset[0] = policy_expires - time.time() + 60
        wait_for("stale", running.files_show(lambda d: d["status"] == "stale"))
        doc = read_json(status_file)
        assert (doc["last_status"], doc["status_code"], doc["latest"]) == ("upgrade-required", 3, "2.4.1")
        snap = agent.snapshot()
        assert snap is not None and snap.last_success is not None
        wait_for("the stale textfile", lambda: 'state="stale"} 1' in textfile.read_text())
        assert "vcheckd_version_status{" in textfile.read_text(), "the last verified status stays"

        # It comes back (a new process, the same database), the clock right.
        offset[0] = 0.0
        back = VcheckdServer(server.binary, server.folder, server.folder / "v5.private").start()
        try:
            proxy.upstream = back.address
            wait_for("recovery", running.files_show(lambda d: d["status"] == "upgrade-required"), timeout=60)
            doc = read_json(status_file)
            assert (doc["consecutive_failures"], doc["error"]) == (0, None)
            wait_for("the ok textfile", lambda: 'state="ok"} 1' in textfile.read_text())
            # Check now (SIGHUP's library call) runs one at once.
            before = agent.snapshot()
            assert before is not None
            agent.check_now()
            wait_for("a check now", lambda: (agent.snapshot() or before).checked_at != before.checked_at)
        finally:
            running.stop()
            back.stop()
        # One line per change of status, however many checks.
        lines = status_lines(caplog)
        assert [line.split(": ", 1)[1].split(" (", 1)[0] for _, line in lines] == [
            "upgrade-required",
            "stale",
            "upgrade-required",
        ], lines
        assert {level for level, _ in lines} == {logging.WARNING}
        assert not [p for p in status_file.parent.iterdir() if p.name.startswith(".")], "no temporary files left"
    finally:
        running.agent.stop()
        proxy.close()


def expected_textfile(status: int | None, state: str, last_success: int, failures: int, latest: str = "2.4.1") -> str:
    lines = []
    if status is not None:
        lines += [
            "# HELP vcheckd_version_status Status code of the last verified check: "
            "0 unknown, 1 up to date, 2 upgrade available, 3 upgrade required.",
            "# TYPE vcheckd_version_status gauge",
            f'vcheckd_version_status{{zone="{ZONE}",running="2.3.0",latest="{latest}"}} {status}',
        ]
    lines += [
        "# HELP vcheckd_version_check_state The agent's state: 1 for the current one.",
        "# TYPE vcheckd_version_check_state gauge",
    ]
    lines += [
        f'vcheckd_version_check_state{{zone="{ZONE}",state="{s}"}} {int(s == state)}'
        for s in ("ok", "stale", "disabled")
    ]
    lines += [
        "# HELP vcheckd_version_check_last_success_timestamp_seconds When a policy was last verified.",
        "# TYPE vcheckd_version_check_last_success_timestamp_seconds gauge",
        f'vcheckd_version_check_last_success_timestamp_seconds{{zone="{ZONE}"}} {last_success}',
        "# HELP vcheckd_version_check_consecutive_failures Checks failed since the last success.",
        "# TYPE vcheckd_version_check_consecutive_failures gauge",
        f'vcheckd_version_check_consecutive_failures{{zone="{ZONE}"}} {failures}',
    ]
    return "\n".join(lines) + "\n"


def test_before_any_success_the_status_is_stale(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with silent_socket() as silent:
        client = Client(
            ZONE,
            KEY,
            "2.3.0",
            name_servers=[f"127.0.0.1:{silent.getsockname()[1]}"],
            state_path=tmp_path / "s.json",
            timeout=0.3,
            environ={},
        )
        status_file, textfile = tmp_path / "status.json", tmp_path / "vc.prom"
        running = Running(
            Agent(client, status_file=status_file, textfile=textfile, startup_jitter=0, backoff_initial=0.2)
        )
        try:
            wait_for("a failed check", running.files_show(lambda d: True))
        finally:
            running.stop()
    doc = read_json(status_file)
    assert (doc["status"], doc["last_status"], doc["status_code"], doc["latest"]) == ("stale", None, None, None)
    assert doc["consecutive_failures"] >= 1 and doc["last_success"] is None and doc["policy_expires"] is None
    assert textfile.read_text() == expected_textfile(None, "stale", 0, doc["consecutive_failures"])
    assert status_lines(caplog) and status_lines(caplog)[0][0] == logging.WARNING


class HighRandom(random.Random):
    """Draws the top of every range: the longest startup delay."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_stale_only_at_a_failed_check_or_at_the_start(server: VcheckdServer, tmp_path: Path) -> None:
    key = server.folder.parent / "keys" / "v5.public"
    state = tmp_path / "state.json"
    offset = [0.0]

    def client(name_server: str) -> Client:
        return Client(
            ZONE,
            key,
            "2.3.0",
            name_servers=[name_server],
            state_path=state,
            timeout=0.3,
            environ={},
            clock=lambda: time.time() + offset[0],
        )

    first = Agent(client(server.address), startup_jitter=0)
    assert first.run_once() == 0
    verified = first.snapshot()
    assert verified is not None and verified.status.value == "upgrade-required"
    assert verified.policy_expires is not None

    with silent_socket() as silent:
        away = f"127.0.0.1:{silent.getsockname()[1]}"
        # A restart keeps the verified status from the client state, and a
        # failed check keeps it (sticky) while that policy is fresh.
        restarted = Agent(client(away), status_file=tmp_path / "status.json", rng=HighRandom(), backoff_initial=3600)
        snap = restarted.snapshot()
        assert snap is not None and (snap.status.value, snap.consecutive_failures) == ("upgrade-required", 0)
        assert restarted.run_once() == 1
        snap = restarted.snapshot()
        assert snap is not None and snap.status.value == "upgrade-required", "sticky after a restart"

        # The policy expires between checks: no timer turns the status
        # stale; the next failed check does.
        offset[0] = verified.policy_expires - time.time() + 60
        running = Running(restarted)  # its first check an hour away
        try:
            time.sleep(1.0)
            snap = restarted.snapshot()
            assert snap is not None and snap.status.value == "upgrade-required", "no change between checks"
            restarted.check_now()
            wait_for("stale at the failed check", running.files_show(lambda d: d["status"] == "stale"))
            doc = read_json(tmp_path / "status.json")
            assert (doc["last_status"], doc["status_code"], doc["consecutive_failures"]) == ("upgrade-required", 3, 2)
        finally:
            running.stop()

        # A start with the expired policy kept: stale at once, before any check.
        later = Agent(client(away))
        snap = later.snapshot()
        assert snap is not None and snap.status.value == "stale"
        assert snap.last_status is not None and snap.last_status.label == "upgrade-required"


def test_disabled_sends_nothing_ever(tmp_path: Path) -> None:
    with silent_socket() as silent:
        silent.setblocking(False)
        client = Client(
            ZONE,
            KEY,
            "2.3.0",
            cluster_id="c",
            node_id="n",
            name_servers=[f"127.0.0.1:{silent.getsockname()[1]}"],
            state_path=tmp_path / "s.json",
            environ={"DISABLE_VERSION_CHECK": "1"},
        )
        status_file, textfile = tmp_path / "status.json", tmp_path / "vc.prom"
        agent = Agent(client, status_file=status_file, textfile=textfile, interval=0.2)
        running = Running(agent)
        try:
            wait_for("the disabled status", running.files_show(lambda d: True))
            agent.check_now()
            time.sleep(0.5)  # several intervals and a check now
        finally:
            running.stop()
        with pytest.raises(BlockingIOError):
            silent.recv(512)  # not one datagram
    doc = read_json(status_file)
    assert (doc["status"], doc["last_status"], doc["status_code"], doc["consecutive_failures"]) == (
        "disabled",
        None,
        None,
        0,
    )
    assert doc["message"] == "DISABLE_VERSION_CHECK is set; nothing sent"
    assert 'state="disabled"} 1' in textfile.read_text()
    assert "vcheckd_version_status{" not in textfile.read_text()
    assert not (tmp_path / "s.json").exists()


def test_disable_telemetry_is_anonymous_in_the_status_file(server: VcheckdServer, tmp_path: Path) -> None:
    client = Client(
        ZONE,
        server.folder.parent / "keys" / "v5.public",
        "2.4.1",
        cluster_id="c",
        node_id="n",
        name_servers=[server.address],
        state_path=tmp_path / "s.json",
        environ={"DISABLE_TELEMETRY": "on"},
    )
    agent = Agent(client, status_file=tmp_path / "status.json", startup_jitter=0)
    assert agent.run_once() == 0
    agent.write_files()
    doc = read_json(tmp_path / "status.json")
    assert (doc["status"], doc["anonymous"]) == ("up-to-date", True)


def test_the_command_line_agent_checks_on_sighup_and_stops_on_sigterm(server: VcheckdServer, tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISABLE_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vcheckd_client",
            "agent",
            "--zone",
            ZONE,
            "--key",
            str(server.folder.parent / "keys" / "v5.public"),
            "--version",
            "2.4.0",
            "--anonymous",
            "--server",
            server.address,
            "--state",
            str(tmp_path / "s.json"),
            "--status-file",
            str(status_file),
            "--startup-jitter",
            "0",
            "--interval",
            "3600",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for("the first check", lambda: status_file.exists())
        first = read_json(status_file)
        assert first["status"] == "upgrade-required"
        time.sleep(1.1)  # checked_at has a resolution of one second
        process.send_signal(signal.SIGHUP)
        wait_for("a check on SIGHUP", lambda: read_json(status_file)["checked_at"] != first["checked_at"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    lines = [line for line in process.stderr.read().splitlines() if "version check for" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "upgrade-required" in lines[0], lines
