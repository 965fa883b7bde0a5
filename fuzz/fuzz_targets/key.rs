//! The key parser (`vck1:<id>:<hex>`, with comment lines, as key files
//! hold it): never a panic, and what parses prints back to a token that
//! parses to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcheckd::protocol::Key;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = Key::parse(text) {
        let again = Key::parse(&key.to_token()).expect("a printed key parses");
        assert!(again == key, "a key changed when printed and parsed again");
    }
});
