"""The client against a real vcheckd on loopback: a report is recorded once,
the status equals ``vcheckd check``'s, TCP is used when the answer is
truncated, and tampered, replayed, expired and every invalid policy of the
vector file are refused with their reason and exit code."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from vcheckd_client import CheckDisabled, Client, DnsRcodeError, DnsTimeout, PolicyError, StateError, Status
from vcheckd_client.cli import main
from vcheckd_client.dns import Resolver
from vcheckd_client.policy import epoch_of, from_txt_strings
from vcheckd_client.state import StateFile

from .support import (
    SERIAL,
    VECTORS,
    ZONE,
    Proxy,
    VcheckdServer,
    faketime_works,
    keygen,
    missing,
    silent_socket,
)


def public_key(server: VcheckdServer) -> Path:
    return server.folder.parent / "keys" / "v5.public"


def client_for(server: VcheckdServer, tmp_path: Path, version: str, via: str | None = None, **kw: Any) -> Client:
    kw.setdefault("state_path", tmp_path / "client-state.json")
    return Client(ZONE, public_key(server), version, name_servers=[via or server.address], environ={}, **kw)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def cli_check(
    capsys: pytest.CaptureFixture[str], via: str, server: VcheckdServer, tmp_path: Path, version: str
) -> tuple[int, dict[str, Any]]:
    """``vcheckd-client check --json``, anonymous, with client_for's state."""
    return cli(
        capsys,
        "check",
        "--server",
        via,
        "--zone",
        ZONE,
        "--key",
        str(public_key(server)),
        "--anonymous",
        "--version",
        version,
        "--state",
        str(tmp_path / "client-state.json"),
    )


def test_a_report_is_recorded_once(server: VcheckdServer, tmp_path: Path) -> None:
    client = client_for(server, tmp_path, "2.3.0", cluster_id="cluster-a", node_id="node-1")
    first = client.check()
    assert first.queries == 2, "a first check fetches the policy"
    assert first.status is Status.UPGRADE_REQUIRED
    assert first.message == "security fix CVE-2026-0001 in 2.3.1: https://vendor.example/security/CVE-2026-0001"
    assert first.policy.serial == SERIAL
    assert not first.anonymous
    second = client.check()
    assert second.queries == 1, "later checks seal to the kept policy"
    assert second.report_id != first.report_id
    # A resolver's retry: the same name twice is one report.
    dry = client.dry_run()
    resolver = Resolver([server.address])
    for _ in range(2):
        assert from_txt_strings(resolver.query_txt(dry.report.name).records[0]) is not None
    report_ids = [first.report_id, second.report_id, dry.report.report_id.hex()]
    for report_id in report_ids:
        assert server.wait_recorded(report_id)[0] == 1, report_id
    server.stop()
    for report_id in report_ids:
        assert server.reports(report_id)[0] == 1, report_id
    stats = subprocess.run(
        [str(server.binary), "stats", "summary", "--json", "--db", str(server.db)],
        capture_output=True,
        text=True,
        check=True,
    )
    summary = json.loads(stats.stdout)[0]
    # Three reports; four v2 names received (one of them twice).
    assert (summary["reports"], summary["reports_v2"], summary["anonymous_reports"]) == (3, 4, 0), summary
    assert summary["active"][0]["clusters"] == 1 and summary["active"][0]["nodes"] == 1


VERSIONS = ["2.4.1", "2.4.1+build.7", "2.3.1", "2.3.0", "2.2.0", "2.2.7", "2.1.0", "2.4.2", "2.5.0-rc.1", "v2.4.0"]


def test_the_status_equals_vcheckd_checks(server: VcheckdServer, tmp_path: Path) -> None:
    for version in VERSIONS:
        ours = client_for(server, tmp_path, version, state_path=tmp_path / "ours.json").check()
        run = server.check(
            version, tmp_path / "theirs.json", "--key", str(public_key(server)), env={"DISABLE_TELEMETRY": "1"}
        )
        assert run.returncode == 0, run.stderr
        theirs = json.loads(run.stdout)
        assert (int(ours.status), ours.status.label, ours.message, ours.latest) == (
            theirs["status"],
            theirs["status_name"],
            theirs["message"],
            theirs["latest"],
        ), version
        assert ours.to_json()["policy"] == theirs["policy"], version
        assert ours.anonymous


def test_the_state_file_is_shared_with_vcheckd_check(server: VcheckdServer, tmp_path: Path) -> None:
    state = tmp_path / "shared.json"
    run = server.check("2.4.1", state, "--key", str(public_key(server)), env={"DISABLE_TELEMETRY": "1"})
    assert json.loads(run.stdout)["queries"] == 2
    # vcheckd check kept the policy: this client seals to it at once.
    result = client_for(server, tmp_path, "2.4.1", state_path=state).check()
    assert result.queries == 1
    run = server.check("2.4.1", state, "--key", str(public_key(server)), env={"DISABLE_TELEMETRY": "1"})
    assert json.loads(run.stdout)["queries"] == 1, "and the other way round"


def test_a_policy_too_big_for_udp_comes_over_tcp(binary: Path, tmp_path: Path) -> None:
    versions = ", ".join(f'"3.{minor}.{patch}"' for minor in range(10) for patch in range(40))
    keys = tmp_path / "keys"
    keys.mkdir()
    keygen(binary, keys, 5)
    server = VcheckdServer(
        binary, tmp_path / "server", keys / "v5.private", releases=f"versions = [{versions}]\n"
    ).start()
    try:
        answer = Resolver([server.address]).query_txt(f"5._policy.{ZONE}.")
        assert answer.tcp
        wire = from_txt_strings(answer.records[0])
        assert wire is not None and len(wire) > 1232
        result = client_for(server, tmp_path, "3.9.38").check()
        assert (result.status, result.message, result.latest) == (
            Status.UPGRADE_AVAILABLE,
            "3.9.39 is available",
            "3.9.39",
        )
        run = server.check(
            "3.9.38", tmp_path / "theirs.json", "--key", str(public_key(server)), env={"DISABLE_TELEMETRY": "1"}
        )
        assert json.loads(run.stdout)["message"] == result.message
        assert server.wait_recorded(result.report_id)[0] == 1
    finally:
        server.stop()


def test_dns_failures_have_their_errors_and_exit_codes(
    server: VcheckdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = str(public_key(server))
    common = ["--key", key, "--anonymous", "--version", "2.4.1", "--state", str(tmp_path / "s.json"), "--timeout", "1"]
    # REFUSED, from the real server: a zone it does not serve.
    code, doc = cli(capsys, "check", "--server", server.address, "--zone", "vc.example.org", *common)
    assert (code, doc["rcode"], doc["status_name"]) == (6, "REFUSED", "stale"), doc
    with pytest.raises(DnsRcodeError) as refused:
        Client(
            "vc.example.org", key, "2.4.1", name_servers=[server.address], state_path=tmp_path / "s.json", environ={}
        ).check()
    assert refused.value.rcode == 5 and refused.value.rcode_name == "REFUSED"
    # A timeout: a name server that never answers.
    with silent_socket() as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code, doc = cli(capsys, "check", "--server", address, "--zone", ZONE, *common)
        assert code == 3, doc
        with pytest.raises(DnsTimeout):
            client_for(server, tmp_path, "2.4.1", via=address, timeout=1).check()
    # SERVFAIL and NXDOMAIN, and an answer with no policy, through the proxy.
    proxy = Proxy(server.address)
    try:
        for rcode, expected in ((2, 5), (3, 7)):
            proxy.rcode = rcode
            code, doc = cli(capsys, "check", "--server", proxy.address, "--zone", ZONE, *common)
            assert code == expected, doc
        proxy.rcode = None
        proxy.rewrite = lambda records: [(b"v=spf1 -all",)]
        code, doc = cli(capsys, "check", "--server", proxy.address, "--zone", ZONE, *common)
        assert (code, doc["reason"]) == (8, "missing"), doc
        # SERVFAIL from one name server: the next one is asked, same name.
        proxy.rewrite, proxy.rcode = None, 2
        result = Client(
            ZONE,
            key,
            "2.4.1",
            name_servers=[proxy.address, server.address],
            state_path=tmp_path / "s2.json",
            environ={},
        ).check()
        assert result.status is Status.UP_TO_DATE
        assert server.wait_recorded(result.report_id)[0] == 1
    finally:
        proxy.close()


def test_the_opt_out_switches(server: VcheckdServer, tmp_path: Path) -> None:
    proxy = Proxy(server.address)
    try:
        client = Client(
            ZONE,
            public_key(server),
            "2.4.1",
            cluster_id="c",
            node_id="n",
            name_servers=[proxy.address],
            state_path=tmp_path / "s.json",
            environ={"DISABLE_VERSION_CHECK": "yes"},
        )
        with pytest.raises(CheckDisabled):
            client.check()
        with pytest.raises(CheckDisabled):
            client.dry_run()
        assert proxy.queries == [], "nothing at all is sent"
        for off in ("0", "false", "No", " off ", ""):
            client.environ = {"DISABLE_VERSION_CHECK": off}
            assert not client.disabled
        client.environ = {"DISABLE_TELEMETRY": "1"}
        result = client.check()
        assert result.anonymous
        assert server.wait_recorded(result.report_id)[0] == 1
        server.stop()
        summary = subprocess.run(
            [str(server.binary), "stats", "summary", "--json", "--db", str(server.db)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(summary.stdout)[0]["anonymous_reports"] == 1
    finally:
        proxy.close()


def test_tampered_policies_are_refused(
    server: VcheckdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = Proxy(server.address)
    try:
        client = client_for(server, tmp_path, "2.3.1", via=proxy.address)
        assert client.check().status is Status.UPGRADE_AVAILABLE
        assert proxy.last is not None
        wire = from_txt_strings(proxy.last[0])
        assert wire is not None
        for at, reason in (
            (0, "malformed"),
            (1, "unknown_key"),
            (10, "signature"),
            (len(wire) // 2, "signature"),
            (len(wire) - 1, "signature"),
        ):

            def flip(records: list[tuple[bytes, ...]], at: int = at) -> list[tuple[bytes, ...]]:
                w = bytearray(from_txt_strings(records[0]) or b"")
                w[at] ^= 0x10
                return [(b"v=vc2", bytes(w))]

            proxy.rewrite = flip
            with pytest.raises(PolicyError) as refused:
                client.check()
            assert refused.value.reason == reason, (at, str(refused.value))
            code, doc = cli_check(capsys, proxy.address, server, tmp_path, "2.3.1")
            assert (code, doc["reason"], doc["status_name"]) == (9, reason, "stale"), doc
            assert doc["last_known"]["status_name"] == "upgrade-available", "the last verified status, shown as old"
        # Nothing refused was kept: an honest answer still passes.
        proxy.rewrite = None
        assert client.check().status is Status.UPGRADE_AVAILABLE
    finally:
        proxy.close()


def test_a_replayed_older_serial_is_refused(
    server: VcheckdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = Proxy(server.address)
    try:
        client = client_for(server, tmp_path, "2.4.1", via=proxy.address)
        assert client.check().policy.serial == SERIAL
        old = proxy.last
        assert old is not None
        # The operator raises the SOA serial and reloads.
        server.set_serial(SERIAL + 1)
        server.reload()
        deadline = time.monotonic() + 30
        while client.check().policy.serial != SERIAL + 1:
            assert time.monotonic() < deadline, "the reload did not take"
            time.sleep(0.2)
        proxy.rewrite = lambda records: old
        with pytest.raises(PolicyError) as refused:
            client.check()
        assert refused.value.reason == "rollback", str(refused.value)
        code, doc = cli_check(capsys, proxy.address, server, tmp_path, "2.4.1")
        assert (code, doc["reason"]) == (11, "rollback"), doc
        seen = StateFile(tmp_path / "client-state.json").load(ZONE, client.key).seen
        assert seen is not None and seen.serial == SERIAL + 1
    finally:
        proxy.close()


def test_answers_of_servers_whose_clock_is_off(
    binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real answers from servers under faketime: signed five hours ago
    (replayed after a current one), three days ago (expired), and two weeks
    ahead (a new epoch: the report is sealed again to its key)."""
    if not faketime_works():
        missing("faketime is not installed (apt-get install faketime)")
    keys = tmp_path / "keys"
    keys.mkdir()
    keygen(binary, keys, 5, clock="-4d")  # its ratchet starts before every server's clock
    servers = {
        clock: VcheckdServer(binary, tmp_path / f"server{clock}", keys / "v5.private", clock=clock or None).start()
        for clock in ("", "-5h", "-3d", "+14d")
    }
    try:
        now = servers[""]
        client = client_for(now, tmp_path, "2.4.1")
        assert client.check().status is Status.UP_TO_DATE
        for clock, reason, code in (("-5h", "replayed", 11), ("-3d", "expired", 10)):
            behind = servers[clock]
            with pytest.raises(PolicyError) as refused:
                client_for(behind, tmp_path, "2.4.1").check()
            assert refused.value.reason == reason, str(refused.value)
            got, doc = cli_check(capsys, behind.address, now, tmp_path, "2.4.1")
            assert (got, doc["reason"]) == (code, reason), doc
        # A fresh client (no state) refuses the expired one as well.
        with pytest.raises(PolicyError, match="expired"):
            client_for(servers["-3d"], tmp_path, "2.4.1", state_path=tmp_path / "fresh.json").check()
        # Ahead by two weeks: its epoch is not the kept policy's, so the
        # first report is not recorded there and is sealed again.
        ahead = client_for(servers["+14d"], tmp_path, "2.4.1").check()
        assert ahead.queries == 2
        assert ahead.policy.epoch == epoch_of(time.time() + 14 * 86400)
    finally:
        for s in servers.values():
            s.stop()


@pytest.mark.parametrize("vector", VECTORS["invalid_policies"], ids=lambda v: v["description"])
def test_every_invalid_vector_is_refused_in_a_real_exchange(
    vector: dict[str, Any], server: VcheckdServer, tmp_path: Path
) -> None:
    """The vector's TXT strings in place of the real server's answer, to a
    client carrying the vectors' key, at the vector's time and state."""
    state = tmp_path / "client-state.json"
    if vector["seen"] is not None:
        entry = {"zone": ZONE, "key_id": 7, **vector["seen"]}
        state.write_text(json.dumps({"version": 1, "policies": [entry]}))
    proxy = Proxy(server.address)
    proxy.rewrite = lambda records: [tuple(bytes.fromhex(s) for s in vector["txt_strings"])]
    try:
        client = Client(
            vector["zone"],
            VECTORS["keys"]["public"],
            "2.4.1",
            name_servers=[proxy.address],
            state_path=state,
            environ={},
            clock=lambda: float(vector["now"]),
        )
        with pytest.raises(PolicyError) as refused:
            client.check()
        assert refused.value.reason == vector["error"], str(refused.value)
        assert len(proxy.queries) == 1, "refused at the policy name, before any report"
    finally:
        proxy.close()


@pytest.mark.parametrize("vector", VECTORS["policies"], ids=lambda v: v["description"])
def test_vector_policies_give_their_statuses_in_a_real_exchange(
    vector: dict[str, Any], server: VcheckdServer, tmp_path: Path
) -> None:
    proxy = Proxy(server.address)
    proxy.rewrite = lambda records: [tuple(bytes.fromhex(s) for s in vector["txt_strings"])]
    expected = vector["statuses"][-1]
    try:
        result = Client(
            ZONE,
            VECTORS["keys"]["public"],
            expected["version"],
            name_servers=[proxy.address],
            state_path=tmp_path / "s.json",
            environ={},
            clock=lambda: float(vector["verify_at"]),
            effort_budget=0.05,
        ).check()
        assert (int(result.status), result.message) == (expected["status"], expected["message"])
        assert result.policy.wire.hex() == vector["wire"]
        assert len(proxy.queries) == 2, "the policy name, then the report"
    finally:
        proxy.close()


def test_a_state_that_cannot_be_saved_fails_the_check(server: VcheckdServer, tmp_path: Path) -> None:
    # Its temporary file's name would be too long for the file system.
    client = client_for(server, tmp_path, "2.4.1", state_path=tmp_path / ("s" * 250))
    with pytest.raises(StateError, match="cannot save the client state"):
        client.check()
    assert client.last_known() is None
