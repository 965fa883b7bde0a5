//! Protocol v2 end to end, in-process on an ephemeral port: a sealed
//! report is answered with the zone's signed policy (no decryption on the
//! answer path), the client verifies it and computes its status, and the
//! processor opens the frame and records it once.

mod common;

use std::net::SocketAddr;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use vcheckd::client::v2::{CheckV2, ClientState};
use vcheckd::client::Reporter;
use vcheckd::config::Config;
use vcheckd::daemon::RunningServer;
use vcheckd::hint::Status;
use vcheckd::protocol::v2::effort::Effort;
use vcheckd::protocol::v2::policy::from_txt_strings;
use vcheckd::protocol::v2::{Epoch, PolicyError, PrivateKey, PrivateKeyring, SealKey};
use vcheckd::protocol::{KeyId, ZoneName};

struct V2Setup {
    base: Setup,
    private: PrivateKey,
}

fn v2_config(releases: &str, accept_v1: bool) -> String {
    config_text(releases).replace(
        "keys = [\"test.key\"]",
        &format!("keys = [\"test.key\"]\nprivate_keys = [\"v2.private\"]\naccept_v1 = {accept_v1}"),
    )
}

impl V2Setup {
    fn new(releases: &str, accept_v1: bool) -> Self {
        let base = Setup::new();
        let private = PrivateKey::generate(KeyId(5), now());
        write_private(&base.dir.path().join("v2.private"), &private.to_token());
        std::fs::write(base.config_path(), v2_config(releases, accept_v1)).unwrap();
        V2Setup { base, private }
    }

    fn check(&self, cluster: &str, version: &str) -> CheckV2 {
        CheckV2::new(
            ZoneName::new(ZONE).unwrap(),
            self.private.public(),
            semver::Version::parse(version).unwrap(),
            Some(&Reporter {
                cluster_id: cluster.into(),
                node_id: "node-1".into(),
            }),
        )
    }

    /// The key a client seals to now, as the zone's policy carries it.
    fn seal(&self) -> SealKey {
        seal_key(&self.private)
    }

    async fn start(&self) -> (RunningServer, SocketAddr) {
        let config = Config::load(&self.base.config_path()).unwrap();
        let server = RunningServer::start(&config).await.unwrap();
        let addr = server.local_addrs()[0];
        (server, addr)
    }
}

fn policy_of(m: &Message) -> Vec<u8> {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    m.answers
        .iter()
        .find_map(|r| match &r.data {
            RData::TXT(t) => from_txt_strings(&t.txt_data),
            _ => None,
        })
        .expect("a v2 policy in the answer")
}

fn now() -> u64 {
    u64::try_from(vcheckd::clock::unix_now()).unwrap()
}

fn seal_key(private: &PrivateKey) -> SealKey {
    PrivateKeyring::new(std::slice::from_ref(private), now())
        .unwrap()
        .seal_key(private.id, Epoch::at(now()))
        .unwrap()
}

#[tokio::test]
async fn a_sealed_report_gets_the_signed_policy_and_is_recorded_once() {
    let setup = V2Setup::new(RELEASES, true);
    let (server, addr) = setup.start().await;
    let check = setup.check("cluster-a", "2.3.0");
    let prepared = check.prepare(&setup.seal(), Effort(4)).unwrap();
    let answer = udp(addr, &query(&prepared.name, RecordType::TXT, Some(1232))).await;
    assert!(!answer.metadata.truncation);
    let mut state = ClientState::in_memory();
    let verified = check
        .verify(&policy_of(&answer), &mut state, now())
        .unwrap();
    // The status the client computes is the server's rule on its config.
    assert_eq!(verified.hint.status, Status::UpgradeRequired);
    assert_eq!(verified.hint.message, "security fix CVE-2026-0001 in 2.3.1");
    assert_eq!(verified.policy.serial, 2026112301, "the zone's SOA serial");
    // A resolver's retry and a second name server see the same frame: one row.
    let again = udp(addr, &query(&prepared.name, RecordType::TXT, Some(1232))).await;
    assert_eq!(policy_of(&again), policy_of(&answer));
    // A and AAAA carry the latest version only.
    let a = udp(addr, &query(&prepared.name, RecordType::A, None)).await;
    assert_eq!(a.answers[0].data.to_string(), "127.2.4.1");
    let aaaa = udp(addr, &query(&prepared.name, RecordType::AAAA, None)).await;
    assert_eq!(aaaa.answers[0].data.to_string(), "fd76:6364:0:2:4:1::");
    // And protocol v1 still works beside it.
    let v1 = udp(
        addr,
        &query(&setup.base.name("c1", "n", "2.4.1"), RecordType::TXT, None),
    )
    .await;
    assert_eq!(v1.answers.len(), 1);
    let metrics = server.metrics().clone();
    server.shutdown().await.unwrap();
    let stored = rows(&setup.base.db_path());
    assert_eq!(stored.len(), 2, "{stored:?}");
    // One frame, four deliveries: opened once, three exact repeats.
    assert!(stored.iter().any(|(v, dup, _)| v == "2.3.0" && *dup == 0));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(metrics.intake_repeats.load(Relaxed), 3);
    assert_eq!(metrics.opened.load(Relaxed), 2);
    assert_eq!(metrics.reports_v2.load(Relaxed), 4);
    assert_eq!(metrics.reports_v1.load(Relaxed), 1);
    // Shown by protocol version in the statistics.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcheckd"))
        .args(["stats", "summary", "--json", "--db"])
        .arg(setup.base.db_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v[0]["reports_v1"].as_u64(), v[0]["reports_v2"].as_u64()),
        (Some(1), Some(4)),
        "{v}"
    );
}

#[tokio::test]
async fn the_policy_name_serves_the_policy_without_a_report() {
    let setup = V2Setup::new(RELEASES, true);
    let (server, addr) = setup.start().await;
    let check = setup.check("c", "2.4.1");
    let answer = udp(
        addr,
        &query(&check.policy_name(), RecordType::TXT, Some(1232)),
    )
    .await;
    let verified = check
        .verify(&policy_of(&answer), &mut ClientState::in_memory(), now())
        .unwrap();
    assert_eq!(verified.hint.status, Status::UpToDate);
    // A key id the zone does not have: no policy, NODATA.
    let other = vcheckd::client::v2::policy_name(&check.zone, KeyId(9));
    let none = udp(addr, &query(&other, RecordType::TXT, Some(1232))).await;
    assert!(none.answers.is_empty());
    server.shutdown().await.unwrap();
    assert!(rows(&setup.base.db_path()).is_empty());
}

#[tokio::test]
async fn without_accept_v1_v1_names_are_not_reports() {
    let setup = V2Setup::new(RELEASES, false);
    let (server, addr) = setup.start().await;
    let v1 = udp(
        addr,
        &query(&setup.base.name("c1", "n", "2.4.1"), RecordType::TXT, None),
    )
    .await;
    assert!(v1.answers.is_empty(), "{v1:?}");
    let prepared = setup
        .check("c", "2.4.1")
        .prepare(&setup.seal(), Effort(4))
        .unwrap();
    let v2 = udp(addr, &query(&prepared.name, RecordType::TXT, Some(1232))).await;
    assert_eq!(v2.answers.len(), 1);
    server.shutdown().await.unwrap();
    assert_eq!(rows(&setup.base.db_path()).len(), 1);
}

#[tokio::test]
async fn a_frame_that_does_not_open_is_answered_but_counted_not_recorded() {
    let setup = V2Setup::new(RELEASES, true);
    let (server, addr) = setup.start().await;
    // Sealed to another key with the same id: right shape, wrong key.
    let stranger = PrivateKey::generate(KeyId(5), now());
    let check = setup.check("c", "2.4.1");
    let prepared = check.prepare(&seal_key(&stranger), Effort(4)).unwrap();
    let answer = udp(addr, &query(&prepared.name, RecordType::TXT, Some(1232))).await;
    // The answer path cannot tell: it answers the policy...
    policy_of(&answer);
    let metrics = server.metrics().clone();
    server.shutdown().await.unwrap();
    // ... and the processor refuses the frame, counted by reason.
    assert!(rows(&setup.base.db_path()).is_empty());
    assert!(metrics
        .rejected()
        .iter()
        .any(|(reason, n)| *reason == "authentication" && *n == 1));
}

#[tokio::test]
async fn a_realistic_policy_fits_one_udp_answer() {
    let releases = realistic_releases();
    let setup = V2Setup::new(&releases, true);
    let (server, addr) = setup.start().await;
    let check = setup.check("c", "3.2.4");
    let prepared = check.prepare(&setup.seal(), Effort(4)).unwrap();
    let request = query(&prepared.name, RecordType::TXT, Some(1232));
    let bytes = udp_raw(
        addr,
        &hickory_proto::serialize::binary::BinEncodable::to_bytes(&request).unwrap(),
    )
    .await
    .unwrap();
    assert!(bytes.len() <= 1232, "{} bytes", bytes.len());
    let answer = Message::from_vec(&bytes).unwrap();
    assert!(!answer.metadata.truncation, "{} bytes", bytes.len());
    let verified = check
        .verify(&policy_of(&answer), &mut ClientState::in_memory(), now())
        .unwrap();
    assert_eq!(verified.policy.releases.latest().to_string(), "3.4.19");
    assert_eq!(verified.hint.status, Status::UpgradeRequired);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_older_serial_is_refused_after_a_newer_one() {
    let setup = V2Setup::new(RELEASES, true);
    let (server, addr) = setup.start().await;
    let check = setup.check("c", "2.4.1");
    let old = policy_of(
        &udp(
            addr,
            &query(&check.policy_name(), RecordType::TXT, Some(1232)),
        )
        .await,
    );
    // The operator raises the SOA serial and reloads.
    let zone = zone_file().replace("2026112301", "2026112302");
    std::fs::write(setup.base.dir.path().join("zone.txt"), zone).unwrap();
    server
        .reload(&Config::load(&setup.base.config_path()).unwrap())
        .unwrap();
    let new = policy_of(
        &udp(
            addr,
            &query(&check.policy_name(), RecordType::TXT, Some(1232)),
        )
        .await,
    );
    let mut state = ClientState::in_memory();
    assert_eq!(
        check.verify(&new, &mut state, now()).unwrap().policy.serial,
        2026112302
    );
    assert_eq!(
        check.verify(&old, &mut state, now()).unwrap_err(),
        PolicyError::Rollback {
            seen: 2026112302,
            got: 2026112301
        }
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_frame_sealed_to_an_epoch_not_accepted_is_answered_not_recorded() {
    let setup = V2Setup::new(RELEASES, true);
    let (server, addr) = setup.start().await;
    let check = setup.check("c", "2.4.1");
    // The key of three weeks ago, as a client whose kept policy is that
    // old would seal to (the test's key file starts then).
    let old = PrivateKey::generate(KeyId(5), now() - 21 * 86_400);
    let ring = PrivateKeyring::new(std::slice::from_ref(&old), now() - 21 * 86_400).unwrap();
    let epoch = Epoch::at(now() - 21 * 86_400);
    let stale = ring.seal_key(KeyId(5), epoch).unwrap();
    let prepared = check.prepare(&stale, Effort(4)).unwrap();
    let answer = udp(addr, &query(&prepared.name, RecordType::TXT, Some(1232))).await;
    // Answered with the policy, which names the current epoch's key...
    let verified = check
        .verify(&policy_of(&answer), &mut ClientState::in_memory(), now())
        .unwrap();
    assert_eq!(verified.policy.seal, setup.seal());
    assert!(!prepared.epoch.accepted_at(verified.policy.issued));
    let metrics = server.metrics().clone();
    server.shutdown().await.unwrap();
    // ... but not recorded: counted by reason on the answer path.
    assert!(rows(&setup.base.db_path()).is_empty());
    assert!(metrics
        .rejected()
        .iter()
        .any(|(reason, n)| *reason == "unknown_epoch" && *n == 1));
}

#[tokio::test]
async fn releases_changed_under_one_serial_are_refused_at_reload() {
    let setup = V2Setup::new(RELEASES, true);
    let (server, addr) = setup.start().await;
    let check = setup.check("c", "2.4.1");
    let before = policy_of(
        &udp(
            addr,
            &query(&check.policy_name(), RecordType::TXT, Some(1232)),
        )
        .await,
    );
    // A new release, the SOA serial left as it was.
    let text = std::fs::read_to_string(setup.base.config_path()).unwrap();
    std::fs::write(
        setup.base.config_path(),
        text.replacen("\"2.4.1\"]", "\"2.4.1\", \"2.5.0\"]", 1),
    )
    .unwrap();
    let err = server
        .reload(&Config::load(&setup.base.config_path()).unwrap())
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("SOA serial 2026112301"), "{text}");
    assert!(text.contains("raise the serial"), "{text}");
    // The old policy is still served, unchanged in content.
    let after = policy_of(
        &udp(
            addr,
            &query(&check.policy_name(), RecordType::TXT, Some(1232)),
        )
        .await,
    );
    let mut state = ClientState::in_memory();
    let a = check.verify(&before, &mut state, now()).unwrap();
    let b = check.verify(&after, &mut state, now()).unwrap();
    assert_eq!(a.policy.releases, b.policy.releases);
    // Raising the serial lets it in.
    let zone = zone_file().replace("2026112301", "2026112302");
    std::fs::write(setup.base.dir.path().join("zone.txt"), zone).unwrap();
    server
        .reload(&Config::load(&setup.base.config_path()).unwrap())
        .unwrap();
    server.shutdown().await.unwrap();
    // And the same check from a fresh start: the server remembers.
    let zone = zone_file();
    std::fs::write(setup.base.dir.path().join("zone.txt"), zone).unwrap();
    let config = Config::load(&setup.base.config_path()).unwrap();
    let Err(e) = RunningServer::start(&config).await else {
        panic!("a lower serial than one signed must be refused");
    };
    assert!(
        format!("{e:#}").contains("lower than serial 2026112302"),
        "{e:#}"
    );
}
