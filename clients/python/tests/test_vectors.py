"""Every vector of docs/vectors/v2.json, read from the file and reproduced
through the package's own API: ids, plaintext, each HPKE step, proof and
effort, frame, report id, labels and name; each policy's fields, latest,
and status and message per version; each invalid policy with its error."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from vcheckd_client import hpke
from vcheckd_client.errors import POLICY_REASONS, PolicyError
from vcheckd_client.keys import PublicKey
from vcheckd_client.names import canonical_zone, policy_name
from vcheckd_client.policy import (
    EPOCH_SECS,
    MAX_VALIDITY_SECS,
    SKEW_SECS,
    Seen,
    decode_policy,
    epoch_of,
    verify_answer,
    verify_txt,
)
from vcheckd_client.release import Status
from vcheckd_client.report import (
    PLAINTEXT_SIZES,
    anonymized_ids,
    build_report,
    cluster_salt,
    cluster_secret,
    effort_of,
    plaintext,
)
from vcheckd_client.semver import RunningVersion

from .support import VECTORS

Json = dict[str, Any]


def _ids(description: str) -> list[str]:
    return [description]


def test_constants_are_the_packages() -> None:
    c = VECTORS["constants"]
    assert c["epoch_secs"] == EPOCH_SECS
    assert c["skew_secs"] == SKEW_SECS
    assert c["max_validity_secs"] == MAX_VALIDITY_SECS
    assert tuple(c["plaintext_sizes"]) == PLAINTEXT_SIZES
    assert c["argon2id"] == {"iterations": 3, "lanes": 1, "length": 32, "memory_kib": 65536}
    keys = VECTORS["keys"]
    assert epoch_of(keys["now"]) == keys["epoch_of_now"]
    for e in keys["epochs"]:
        assert e["start"] == e["epoch"] * EPOCH_SECS
        # The X25519 key pair of each epoch is DeriveKeyPair(ikm): the same
        # RFC 9180 step the client uses for its ephemeral key.
        sk = hpke.derive_key_pair(bytes.fromhex(e["ikm"]))
        assert sk.private_bytes_raw().hex() == e["x25519_private"]
        assert sk.public_key().public_bytes_raw().hex() == e["x25519_public"]


def test_public_key_token() -> None:
    key = PublicKey.parse(VECTORS["keys"]["public"])
    assert key.key_id == 7
    assert key.token() == VECTORS["keys"]["public"]
    assert policy_name("vc.example.com", key.key_id) == "7._policy.vc.example.com."


@pytest.mark.parametrize("vector", VECTORS["ids"], ids=lambda v: v["node_id"][:20])
def test_ids(vector: Json) -> None:
    zone = canonical_zone(vector["zone"])
    assert cluster_salt(zone).hex() == vector["salt"]
    secret = cluster_secret(zone, vector["cluster_id"])
    assert secret.hex() == vector["cluster_secret"]
    ids = anonymized_ids(secret, vector["node_id"])
    assert (ids.cluster.hex(), ids.node.hex()) == (vector["cluster"], vector["node"])


@pytest.mark.parametrize("vector", VECTORS["reports"], ids=lambda v: v["description"])
def test_reports(vector: Json) -> None:
    inp = vector["inputs"]
    zone = canonical_zone(inp["zone"])
    identity = None
    if inp["cluster_id"] is not None:
        identity = anonymized_ids(cluster_secret(zone, inp["cluster_id"]), inp["node_id"])
    assert plaintext(inp["timestamp"], inp["version"], identity).hex() == vector["plaintext"]
    report = build_report(
        zone=zone,
        key_id=inp["key_id"],
        epoch=inp["epoch"],
        seal_key=bytes.fromhex(inp["seal_key"]),
        timestamp=inp["timestamp"],
        version=inp["version"],
        identity=identity,
        effort_target=inp["effort_target"],
        effort_budget=3600.0,  # the vectors take the lowest proof reaching the target
        ikm_e=bytes.fromhex(inp["ikm_e"]),
    )
    assert report.plaintext.hex() == vector["plaintext"]
    assert report.sender.sk_e.hex() == vector["sk_e"]
    assert report.sender.enc.hex() == vector["enc"]
    assert report.sender.shared_secret.hex() == vector["shared_secret"]
    assert report.sender.key.hex() == vector["key"]
    assert report.sender.base_nonce.hex() == vector["base_nonce"]
    assert report.frame[36:-4].hex() == vector["ciphertext"]
    assert report.frame_before_proof.hex() == vector["frame_before_proof"]
    assert struct.pack(">I", report.proof).hex() == vector["proof"]
    effort, digest = effort_of(report.frame)
    assert digest.hex() == vector["effort_digest"]
    assert effort == report.effort == vector["effort"]
    assert report.frame.hex() == vector["frame"]
    assert report.report_id.hex() == vector["report_id"]
    assert list(report.labels) == vector["labels"]
    assert report.name == vector["name"]
    assert len(report.name) - 1 == vector["name_length"]
    assert report.flags == (1 if identity is None else 0)


@pytest.mark.parametrize("vector", VECTORS["policies"], ids=lambda v: v["description"])
def test_policies(vector: Json) -> None:
    key = PublicKey.parse(VECTORS["keys"]["public"])
    inp = vector["inputs"]
    zone = canonical_zone(inp["zone"])
    strings = [bytes.fromhex(s) for s in vector["txt_strings"]]
    policy = verify_txt(strings, key, zone, vector["verify_at"], None)
    assert policy.wire.hex() == vector["wire"]
    assert (policy.issued, policy.expires) == (vector["issued"], vector["expires"])
    assert (policy.serial, policy.epoch, policy.effort) == (inp["serial"], inp["epoch"], inp["effort"])
    assert policy.key_id == inp["key_id"]
    assert policy.seal_key.hex() == inp["seal_key"]
    assert policy.advisory_url == (inp["advisory_url"] or None)
    assert str(policy.latest) == vector["latest"]
    releases = inp["releases"]
    assert [str(v) for v in policy.releases.versions] == releases["versions"]
    assert [str(line) for line in policy.releases.end_of_life] == releases["end_of_life"]
    assert [(a.id, [str(f) for f in a.fixed]) for a in policy.releases.advisories] == [
        (a["id"], a["fixed"]) for a in releases["advisories"]
    ]
    for s in vector["statuses"]:
        verdict = policy.verdict(RunningVersion.parse(s["version"]))
        assert (int(verdict.status), verdict.message) == (s["status"], s["message"]), s
        assert verdict.status == Status(s["status"])
    # Read back as part of a whole answer too, after a TXT record of
    # something else (ignored).
    assert verify_answer([[b"other"], strings], key, zone, vector["verify_at"], None) == policy


@pytest.mark.parametrize("vector", VECTORS["invalid_policies"], ids=lambda v: v["description"])
def test_invalid_policies(vector: Json) -> None:
    key = PublicKey.parse(VECTORS["keys"]["public"])
    strings = [bytes.fromhex(s) for s in vector["txt_strings"]]
    seen = Seen(**vector["seen"]) if vector["seen"] is not None else None
    assert vector["error"] in POLICY_REASONS
    with pytest.raises(PolicyError) as refused:
        verify_txt(strings, key, canonical_zone(vector["zone"]), vector["now"], seen)
    assert refused.value.reason == vector["error"], str(refused.value)
    assert "\n" not in str(refused.value)


def test_every_vector_policy_is_refused_as_missing_without_the_marker() -> None:
    key = PublicKey.parse(VECTORS["keys"]["public"])
    p = VECTORS["policies"][0]
    strings = [bytes.fromhex(s) for s in p["txt_strings"]]
    with pytest.raises(PolicyError) as refused:
        verify_answer([[b"v=vc1"] + strings[1:]], key, "vc.example.com", p["verify_at"], None)
    assert refused.value.reason == "missing"
    # The marker must be exactly v=vc2, a string of its own.
    with pytest.raises(PolicyError) as refused:
        verify_txt([b"v=vc2" + strings[1]] + strings[2:], key, "vc.example.com", p["verify_at"], None)
    assert refused.value.reason == "missing"


def test_decode_ignores_the_clock_and_state_checks_use_it() -> None:
    key = PublicKey.parse(VECTORS["keys"]["public"])
    p = VECTORS["policies"][0]
    wire = bytes.fromhex(p["wire"])
    policy = decode_policy(wire, key, "vc.example.com")
    # Valid up to, not at, its expiry; a clock behind a newer issued seen
    # is moved forward.
    policy.check_fresh(p["expires"] - 1, None)
    with pytest.raises(PolicyError, match="expired"):
        policy.check_fresh(p["expires"], None)
    with pytest.raises(PolicyError, match="expired"):
        policy.check_fresh(0, Seen(0, p["expires"]))
    # Two hours of slack for name servers straddling a full hour.
    policy.check_fresh(p["verify_at"], Seen(0, p["issued"] + SKEW_SECS))
    with pytest.raises(PolicyError) as refused:
        policy.check_fresh(p["verify_at"], Seen(0, p["issued"] + SKEW_SECS + 1))
    assert refused.value.reason == "replayed"
    # The same serial is accepted again; a lower one is not.
    policy.check_fresh(p["verify_at"], Seen(policy.serial, policy.issued))
    with pytest.raises(PolicyError) as refused:
        policy.check_fresh(p["verify_at"], Seen(policy.serial + 1, policy.issued))
    assert refused.value.reason == "rollback"
