//! The plaintext decoder, reached directly: through a name the fuzzer
//! would have to forge AES-GCM tags. What decodes encodes back to the same
//! bytes' meaning (a decode, encode, decode round trip is stable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vcheckd::protocol::Payload;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = Payload::from_bytes(data) {
        let bytes = payload.to_bytes().expect("a decoded payload encodes");
        assert_eq!(Payload::from_bytes(&bytes).expect("re-decodes"), payload);
    }
});
