//! The property protocol v2 rests on: for any release configuration and
//! any running version, the status and message a client computes from the
//! compiled, signed policy equal what the server's rule says on the full
//! configuration.

use proptest::prelude::*;
use semver::Version;

use vcheckd::hint::{AdvisoryConfig, Releases, ReleasesConfig};
use vcheckd::protocol::v2::effort::Effort;
use vcheckd::protocol::v2::keys::Ratchet;
use vcheckd::protocol::v2::{Epoch, PrivateKey, PrivateKeyring, ServedPolicy, SignedPolicy};
use vcheckd::protocol::{KeyId, ZoneName};

/// Versions from a small space, so that listed releases, advisories and
/// running versions often coincide; sometimes a pre-release or build tag,
/// sometimes a huge number.
fn version() -> impl Strategy<Value = Version> {
    (
        prop_oneof![9 => 0u64..4, 1 => any::<u64>()],
        0u64..4,
        prop_oneof![9 => 0u64..6, 1 => (u64::MAX / 2 - 2)..u64::MAX / 2],
        prop_oneof![4 => Just(""), 1 => Just("rc.1"), 1 => Just("alpha")],
        prop_oneof![4 => Just(""), 1 => Just("build.5")],
    )
        .prop_map(|(major, minor, patch, pre, build)| {
            let mut text = format!("{major}.{minor}.{patch}");
            if !pre.is_empty() {
                text.push('-');
                text.push_str(pre);
            }
            if !build.is_empty() {
                text.push('+');
                text.push_str(build);
            }
            Version::parse(&text).unwrap()
        })
}

fn line() -> impl Strategy<Value = String> {
    (0u64..4, proptest::option::of(0u64..4)).prop_map(|(major, minor)| match minor {
        Some(m) => format!("{major}.{m}"),
        None => major.to_string(),
    })
}

fn config() -> impl Strategy<Value = ReleasesConfig> {
    (
        proptest::collection::vec(version(), 1..40),
        proptest::collection::vec(line(), 0..4),
        proptest::collection::vec(
            (
                "[A-Z]{3}-[0-9]{1,6}",
                proptest::collection::vec(version(), 1..5),
            ),
            0..6,
        ),
    )
        .prop_map(|(versions, eol, advisories)| ReleasesConfig {
            versions: versions.iter().map(ToString::to_string).collect(),
            end_of_life: eol,
            advisory: advisories
                .into_iter()
                .map(|(id, fixed)| AdvisoryConfig {
                    id,
                    fixed: fixed.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_status_on_the_compiled_policy_equals_the_servers_rule(
        config in config(),
        running in proptest::collection::vec(version(), 1..20),
    ) {
        let server = Releases::try_from(&config).unwrap();
        let now = 2_900 * 604_800 + 86_400;
        let key = PrivateKey::from_secrets(KeyId(1), [3; 32], Ratchet::new(Epoch::at(now), [4; 32]));
        let zone = ZoneName::new("vc.example.com").unwrap();
        let ring = PrivateKeyring::new(std::slice::from_ref(&key), now).unwrap();
        let served = ServedPolicy::sign(&zone, &ring, server.clone(), None, 1, Effort(0), now, 86_400).unwrap();
        let client = SignedPolicy::verify(served.wire(KeyId(1)).unwrap(), &zone, &key.public(), now, None).unwrap();
        for v in running.iter().chain(server_versions(&config).iter()) {
            prop_assert_eq!(client.releases.hint_for(v), server.hint_for(v), "version {}", v);
        }
    }
}

fn server_versions(config: &ReleasesConfig) -> Vec<Version> {
    config
        .versions
        .iter()
        .map(|v| Version::parse(v).unwrap())
        .collect()
}
