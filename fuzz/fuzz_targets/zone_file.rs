//! The zone file loader, as `vcheckd serve` runs it: the embedded default
//! configuration pointed at a file holding the fuzzer's bytes, then the
//! whole catalog built (zone parse, origin, SOA and NS checks).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vcheckd::config::Config;
use vcheckd::dns::catalog::Catalog;

#[path = "sample.rs"]
mod sample;

/// A folder with a private key file and the config's place; the zone file
/// in it is rewritten for each input.
fn setup() -> &'static (tempfile::TempDir, Config) {
    static SETUP: OnceLock<(tempfile::TempDir, Config)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = sample::config(dir.path());
        (dir, config)
    })
}

fuzz_target!(|data: &[u8]| {
    let (dir, config) = setup();
    std::fs::write(dir.path().join("zone"), data).expect("zone file");
    let _ = Catalog::build_stateless(config, 0);
});
