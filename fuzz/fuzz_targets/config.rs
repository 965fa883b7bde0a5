//! The configuration file: TOML, then the checks `vcheckd serve` makes at
//! load (including each zone's releases), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcheckd::config::{Config, ConfigOrigin};
use vcheckd::hint::Releases;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = ConfigOrigin::File("/etc/vcheckd/vcheckd.toml".into());
    if let Ok(config) = Config::parse(text, origin) {
        for zone in &config.zones {
            let _ = Releases::try_from(&zone.releases);
        }
    }
});
