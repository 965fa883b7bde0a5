//! The configuration the catalog-building targets share: the embedded
//! default's first zone, read from `zone` in a temp folder, with a v1 key
//! and a v2 key pair of fixed bytes (so that both protocols' paths run).

use std::os::unix::fs::PermissionsExt;

use vcheckd::config::{Config, ConfigOrigin};

pub const KEY: &str = "vck1:7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn write_private(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).expect("key file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// The config, its files in `dir` (the zone file `zone` is the caller's).
pub fn config(dir: &std::path::Path) -> Config {
    write_private(&dir.join("fuzz.key"), KEY);
    // Its ratchet from epoch 0: the targets build catalogs at time 0.
    let private = vcheckd::protocol::v2::PrivateKey::from_secrets(
        vcheckd::protocol::KeyId(1),
        [0x42; 32],
        vcheckd::protocol::v2::keys::Ratchet::new(vcheckd::protocol::v2::Epoch(0), [0x21; 32]),
    );
    write_private(&dir.join("fuzz.v2.private"), &private.to_token());
    let mut config = Config::embedded().expect("embedded config");
    config.origin = ConfigOrigin::File(dir.join("vcheckd.toml"));
    config.zones.truncate(1);
    config.zones[0].file = "zone".into();
    config.zones[0].keys = vec!["fuzz.key".into()];
    config.zones[0].private_keys = vec!["fuzz.v2.private".into()];
    config
}
