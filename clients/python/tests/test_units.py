"""The parts with rules of their own: SemVer precedence, zone names, key
tokens, the state file, the opt-out switches, the command line's usage
errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vcheckd_client import Client, ConfigError, PublicKey, ReportError, StateError, Status
from vcheckd_client.cli import main
from vcheckd_client.client import env_flag
from vcheckd_client.names import canonical_zone, payload_labels, report_name
from vcheckd_client.policy import Seen, decode_policy
from vcheckd_client.report import plaintext
from vcheckd_client.semver import RunningVersion, Version, VersionSyntaxError
from vcheckd_client.state import StateFile, default_state_path

from .support import VECTORS

KEY = VECTORS["keys"]["public"]


def test_semver_precedence() -> None:
    # SemVer 2.0.0 §11's example, in order.
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    versions = [Version.parse(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    assert [str(v) for v in versions] == ordered
    assert Version.parse("2.4.1+build.7") == Version.parse("2.4.1")
    assert Version.parse("1.10.0") > Version.parse("1.9.0")
    running = RunningVersion.parse(" v2.4.1+build.7 ")
    assert (running.text, str(running.release)) == ("2.4.1+build.7", "2.4.1")
    for bad in ("2.4", "2.4.1.0", "02.4.1", "2.4.1-", "2.4.1-01", "2.4.1+", "2.4.1-a..b", "2.4.x", "２.4.1", ""):
        with pytest.raises(VersionSyntaxError):
            RunningVersion.parse(bad)


def test_status_labels() -> None:
    assert [s.label for s in Status] == ["unknown", "up-to-date", "upgrade-available", "upgrade-required"]
    assert Status.from_label("upgrade-required") is Status.UPGRADE_REQUIRED


def test_zone_names() -> None:
    assert canonical_zone(" VC.Example.COM. ") == "vc.example.com"
    for bad in ("", ".", "vc..example.com", "vc.exämple.com", "a" * 64 + ".com", "vc example.com"):
        with pytest.raises(ConfigError):
            canonical_zone(bad)
    # §19: a 56-byte plaintext fits zones of up to 70 characters, a 74-byte
    # one zones of up to 41.
    for frame_len, label_count, fixed, longest in ((112, 3, 183, 70), (130, 4, 212, 41)):
        labels = payload_labels(bytes(frame_len))
        assert len(labels) == label_count and all(len(label) <= 63 for label in labels)
        zone = ("a" * 63 + "." + "b" * 6)[:longest]
        assert len(zone) == longest
        assert len(report_name(labels, zone)) - 1 == fixed + longest == 253
        with pytest.raises(ReportError):
            report_name(labels, zone + "c")
    with pytest.raises(ReportError):
        plaintext(0, "1.0.0-" + "a" * 31, None)  # 37 bytes
    assert len(plaintext(0, "1.0.0-" + "a" * 30, None)) == 74
    assert len(plaintext(0, "1.0.0-" + "a" * 12, None)) == 56


def test_key_tokens(tmp_path: Path) -> None:
    key = PublicKey.parse("# the zone's key\n\n" + KEY + "\n")
    assert key.key_id == 7 and key.token() == KEY
    assert PublicKey.parse(KEY.upper().replace("VCK2-PUBLIC", "vck2-public")) == key
    path = tmp_path / "zone.v2.public"
    path.write_text(KEY)
    assert PublicKey.load(path) == key and PublicKey.load(str(path)) == key and PublicKey.load(KEY) == key
    for bad, says in (
        ("vck2-public:256:" + "00" * 32, "0-255"),
        ("vck2-public:7:" + "00" * 31, "64 hex"),
        ("vck2-private:7:" + "00" * 32 + ":1:" + "00" * 32, "private key"),
        ("vck1:1:" + "00" * 32, "protocol v1"),
        (KEY + "\n" + KEY, "found 2"),
    ):
        with pytest.raises(ConfigError, match=says):
            PublicKey.parse(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        PublicKey.load(tmp_path / "missing.public")


def test_the_opt_out_switches_read_as_the_protocol_says() -> None:
    for value in ("1", "yes", "true", "TRUE", "anything"):
        assert env_flag({"X": value}, "X")
    for value in ("", "  ", "0", "false", "False", "no", "NO", "off", " off "):
        assert not env_flag({"X": value}, "X")
    assert not env_flag({}, "X")


def test_state_paths() -> None:
    assert default_state_path({"VCHECKD_STATE": "/s.json", "HOME": "/h"}) == Path("/s.json")
    assert default_state_path({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}) == Path("/var/lib/a/client-state.json")
    assert default_state_path({"XDG_STATE_HOME": "/x", "HOME": "/h"}) == Path("/x/vcheckd/client-state.json")
    assert default_state_path({"HOME": "/h"}) == Path("/h/.local/state/vcheckd/client-state.json")
    with pytest.raises(ConfigError, match="no place for the client state"):
        default_state_path({})
    with pytest.raises(ConfigError):
        Client("vc.example.com", KEY, "1.0.0", environ={})


def test_the_state_file_merges_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    key = PublicKey.parse(KEY)
    vector = VECTORS["policies"][0]
    policy = decode_policy(bytes.fromhex(vector["wire"]), key, "vc.example.com")
    path = tmp_path / "sub" / "state.json"
    state = StateFile(path)
    assert state.load("vc.example.com", key).seen is None
    state.save("vc.example.com", 7, Seen(policy.serial, policy.issued), policy)
    kept = state.load("vc.example.com", key)
    assert kept.seen == Seen(policy.serial, policy.issued) and kept.policy == policy
    # Another process wrote a newer issued meanwhile: never moved back.
    doc = json.loads(path.read_text())
    doc["policies"][0]["issued"] += 3600
    doc["policies"].append({"zone": "vc.example.org", "key_id": 1, "serial": 5, "issued": 6})
    path.write_text(json.dumps(doc))
    state.save("vc.example.com", 7, Seen(policy.serial, policy.issued), policy)
    doc = json.loads(path.read_text())
    assert doc["policies"][0]["issued"] == policy.issued + 3600
    assert doc["policies"][1] == {"zone": "vc.example.org", "key_id": 1, "serial": 5, "issued": 6}
    assert doc["version"] == 1 and doc["policies"][0]["policy"] == vector["wire"]
    # A damaged policy copy is dropped, the serial and issued kept.
    doc["policies"][0]["policy"] = "00"
    path.write_text(json.dumps(doc))
    assert state.load("vc.example.com", key).policy is None
    for text, says in (("{", "not JSON"), ('{"version": 2, "policies": []}', "format 2"), ("[]", "not a vcheckd")):
        path.write_text(text)
        with pytest.raises(StateError, match=says):
            state.load("vc.example.com", key)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(StateError, match="cannot read the client state"):
        StateFile(blocked / "s.json").save("vc.example.com", 7, Seen(1, 1), None)
    # Readable (absent) but not writable: its temporary file's name is too
    # long for the file system (as root too, unlike a read-only folder).
    with pytest.raises(StateError, match="cannot save the client state"):
        StateFile(tmp_path / ("s" * 250)).save("vc.example.com", 7, Seen(1, 1), None)


def test_command_line_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = [
        "check",
        "--zone",
        "vc.example.com",
        "--key",
        KEY,
        "--version",
        "2.4.1",
        "--state",
        str(tmp_path / "s.json"),
    ]
    assert main(base + ["--json"]) == 64
    doc = json.loads(capsys.readouterr().out)
    assert doc["status_name"] == "error" and "--cluster-id, --node-id required" in doc["error"]
    assert main(["check", "--version", "1.0.0", "--anonymous"]) == 64
    assert "--zone, --key required" in capsys.readouterr().err
    assert main(base + ["--anonymous", "--key", str(tmp_path / "none.public")]) == 66
    assert main(base[:-4] + ["--version", "banana", "--anonymous", "--state", str(tmp_path / "s.json")]) == 64
    assert main(["check", "--bogus"]) == 64
    assert main(["--help"]) == 0
    assert "exit codes" in capsys.readouterr().out
