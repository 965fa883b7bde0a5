//! A query name as the server and `vcheckd decode` read it: any text under
//! the zone goes through the base32 labels, the frame and (with the right
//! key) the plaintext. Seeds (fuzz/seeds/decode_name) are real names made
//! by `vcheckd encode` with the key below, so the fuzzer starts past the
//! authentication check and mutates case, labels and lengths from there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcheckd::protocol::name::{decode_labels, decode_query_name, labels_to_frame};
use vcheckd::protocol::{Key, Keyring, ZoneName};

/// docs/PROTOCOL.md's test-vector key; fuzz/seeds/fuzz.key holds it too.
const KEY: &str = "vck1:7:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fuzz_target!(|data: &[u8]| {
    let keyring = Keyring::new(&[Key::parse(KEY).expect("test key")]).expect("one key");
    let zone = ZoneName::new("vc.example.com").expect("zone");
    let labels: Vec<&[u8]> = data.split(|b| *b == b'.').collect();
    // The responder's path: labels in front of the zone, as bytes.
    let by_labels = decode_labels(&keyring, &zone, &labels);
    let _ = labels_to_frame(&labels);
    if let Ok(text) = std::str::from_utf8(data) {
        // The CLI's path: the whole name as text. A name that decodes one
        // way decodes the other way to the same report.
        if let Ok(report) = decode_query_name(&keyring, &zone, text) {
            let name = text.trim_end_matches('.');
            let payload = &name[..name.len() - zone.as_str().len() - 1];
            let labels: Vec<&[u8]> = payload.split('.').map(str::as_bytes).collect();
            assert_eq!(decode_labels(&keyring, &zone, &labels).ok(), Some(report));
        }
    }
    drop(by_labels);
});
