//! vcheckd's wire format, without I/O: what a client and a name server
//! must agree on byte for byte (docs/PROTOCOL.md is the normative text).
//!
//! - [`protocol`]: query names, protocol v1's AES-GCM frame, and protocol
//!   v2's keys, anonymized ids, padded plaintext, HPKE frame, effort proof
//!   and signed policy.
//! - [`hint`]: the release rule (the status a version gets), its compact
//!   form inside a v2 policy, and v1's TXT/A/AAAA hint.
//!
//! It depends on no runtime, database or network code: the server
//! (`vcheckd`) and the client library (`vcheckd-client`) build on it, so
//! there is one implementation of the format.

pub mod hint;
pub mod protocol;
