//! What `vcheckd check` does with the bytes a name server sends back:
//! DNS message decode, then the hint read from its TXT records. A hostile
//! or broken server must get a clear error, never a panic.
#![no_main]

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use vcheckd::client::v1::hint_from_answer;
use vcheckd::hint::Hint;

fuzz_target!(|data: &[u8]| {
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], 53));
    if let Ok(answer) = Message::from_vec(data) {
        let _ = hint_from_answer(server, &answer);
    }
    // The TXT text alone, as a resolver may join or split its strings.
    let _ = Hint::parse_txt(&String::from_utf8_lossy(data));
});
