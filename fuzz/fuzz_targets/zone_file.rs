//! The zone file loader, as `vcheckd serve` runs it: the embedded default
//! configuration pointed at a file holding the fuzzer's bytes, then the
//! whole catalog built (zone parse, origin, SOA and NS checks).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vcheckd::config::{Config, ConfigOrigin};
use vcheckd::dns::catalog::Catalog;

const KEY: &str = "vck1:7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A folder with a private key file and the config's place; the zone file
/// in it is rewritten for each input.
fn setup() -> &'static (tempfile::TempDir, Config) {
    static SETUP: OnceLock<(tempfile::TempDir, Config)> = OnceLock::new();
    SETUP.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("fuzz.key");
        std::fs::write(&key, KEY).expect("key file");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut config = Config::embedded().expect("embedded config");
        config.origin = ConfigOrigin::File(dir.path().join("vcheckd.toml"));
        config.zones.truncate(1);
        config.zones[0].file = "zone".into();
        config.zones[0].keys = vec!["fuzz.key".into()];
        // Protocol v2 too: a fixed key pair, so v2 names take their path.
        let private = vcheckd::protocol::v2::PrivateKey::from_secrets(
            vcheckd::protocol::KeyId(1),
            [0x21; 32],
            [0x42; 32],
        )
        .expect("v2 key");
        let v2_path = dir.path().join("fuzz.v2.private");
        std::fs::write(&v2_path, private.to_token()).expect("v2 key file");
        std::fs::set_permissions(&v2_path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        config.zones[0].private_keys = vec!["fuzz.v2.private".into()];
        (dir, config)
    })
}

fuzz_target!(|data: &[u8]| {
    let (dir, config) = setup();
    std::fs::write(dir.path().join("zone"), data).expect("zone file");
    let _ = Catalog::build(config, 0);
});
