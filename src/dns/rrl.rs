//! Response rate limiting (RRL) per client prefix, as NSD and Knot do it.
//!
//! UDP source addresses can be forged, so without a limit anyone can aim our
//! answers at a victim. Answers to one prefix (/24 for IPv4, /56 for IPv6:
//! what one site or customer usually holds) beyond `rate` a second are
//! limited: every `slip`-th limited answer is still sent, truncated (TC=1,
//! no records), so that a real resolver behind the prefix retries over TCP,
//! which cannot be forged; the others are dropped. TCP is never limited.
//!
//! The table is a fixed array of atomics, allocated once: no allocation,
//! lock or log line per packet, and the UDP workers share it. Each slot
//! holds one prefix's counter for the current second (NSD's per-second
//! counting; a burst straddling a second boundary can get up to twice
//! `rate`). Prefixes are hashed with a per-process random seed, so nobody
//! can pick a prefix that collides with a victim's; a collision only makes
//! limiting a little stricter for the prefixes that share a slot.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Slots in the table: 512 KiB of counters. With a few thousand active
/// resolver prefixes, collisions are rare.
const SLOTS: usize = 1 << 16;

/// What to do with one UDP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Within the rate: send it as built.
    Send,
    /// Over the rate, and this one slips: send it truncated.
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

pub struct RateLimiter {
    /// Responses a second per prefix; 0 turns limiting off.
    rate: u32,
    /// Every `slip`-th limited response is sent truncated; 0: none is.
    slip: u32,
    seed: u64,
    start: Instant,
    /// Per slot: the second it counts (high 32 bits) and the responses
    /// counted in it (low 32 bits).
    slots: Box<[AtomicU64]>,
}

impl RateLimiter {
    pub fn new(rate: u32, slip: u32) -> Self {
        Self::with_seed(rate, slip, rand::random())
    }

    fn with_seed(rate: u32, slip: u32, seed: u64) -> Self {
        let slots = if rate == 0 { 0 } else { SLOTS };
        RateLimiter {
            rate,
            slip,
            seed,
            start: Instant::now(),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate != 0
    }

    /// Counts one response to `client` and says what to do with it.
    pub fn check(&self, client: IpAddr) -> Action {
        if !self.enabled() {
            return Action::Send;
        }
        // Seconds since start fit 32 bits for 136 years.
        let now = self.start.elapsed().as_secs() as u32;
        self.check_at(client, now)
    }

    fn check_at(&self, client: IpAddr, now: u32) -> Action {
        let slot = &self.slots[self.slot(client)];
        let mut current = slot.load(Ordering::Relaxed);
        let count = loop {
            let (second, count) = ((current >> 32) as u32, current as u32);
            let count = if second == now {
                count.saturating_add(1)
            } else {
                1
            };
            let next = (u64::from(now) << 32) | u64::from(count);
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break count,
                Err(seen) => current = seen,
            }
        };
        if count <= self.rate {
            return Action::Send;
        }
        let over = count - self.rate;
        if self.slip != 0 && over.is_multiple_of(self.slip) {
            Action::Slip
        } else {
            Action::Drop
        }
    }

    fn slot(&self, client: IpAddr) -> usize {
        let prefix = match client {
            IpAddr::V4(v4) => u64::from(u32::from(v4) & 0xffff_ff00),
            // The top 56 bits, tagged so that no IPv6 prefix equals an IPv4 one.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => u64::from(u32::from(v4) & 0xffff_ff00),
                None => ((u128::from(v6) >> 72) as u64) | (1 << 63),
            },
        };
        (mix(prefix ^ self.seed) as usize) & (self.slots.len() - 1)
    }
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Turns an encoded response into its slip form in place: the header with
/// TC set and no records counted, and the question section. Returns false
/// (send nothing) if the bytes do not hold a well-formed question.
pub fn truncate_to_question(response: &mut Vec<u8>) -> bool {
    if response.len() < 12 {
        return false;
    }
    let questions = u16::from_be_bytes([response[4], response[5]]);
    let mut end = 12;
    for _ in 0..questions {
        match skip_name(response, end) {
            Some(after) if after + 4 <= response.len() => end = after + 4,
            _ => return false,
        }
    }
    response.truncate(end);
    response[2] |= 0x02; // TC
    response[6..12].fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
    true
}

/// The offset just past the name that starts at `at`.
fn skip_name(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *bytes.get(at)?;
        match len {
            0 => return Some(at + 1),
            // A compression pointer ends the name.
            l if l & 0xc0 == 0xc0 => return (at + 2 <= bytes.len()).then_some(at + 2),
            l if l & 0xc0 != 0 => return None,
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, Query};
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use hickory_proto::serialize::binary::BinEncodable;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn actions(rrl: &RateLimiter, client: &str, n: usize, now: u32) -> Vec<Action> {
        (0..n).map(|_| rrl.check_at(ip(client), now)).collect()
    }

    #[test]
    fn over_the_rate_every_second_limited_answer_slips() {
        let rrl = RateLimiter::with_seed(5, 2, 1);
        let got = actions(&rrl, "192.0.2.1", 11, 7);
        use Action::*;
        assert_eq!(
            got,
            [Send, Send, Send, Send, Send, Drop, Slip, Drop, Slip, Drop, Slip]
        );
        // A new second starts a new count.
        assert_eq!(actions(&rrl, "192.0.2.1", 5, 8), [Send; 5]);
    }

    #[test]
    fn a_slash_24_is_one_client_and_its_neighbour_another() {
        let rrl = RateLimiter::with_seed(3, 1, 1);
        actions(&rrl, "192.0.2.1", 3, 1);
        assert_eq!(rrl.check_at(ip("192.0.2.200"), 1), Action::Slip);
        // Another /24 has its own slot (with this seed; 1 in 65,536 would not).
        assert_eq!(rrl.check_at(ip("192.0.3.1"), 1), Action::Send);
    }

    #[test]
    fn a_slash_56_is_one_client() {
        let rrl = RateLimiter::with_seed(2, 0, 1);
        actions(&rrl, "2001:db8:0:ab00::1", 2, 1);
        assert_eq!(
            rrl.check_at(ip("2001:db8:0:abff:1::9"), 1),
            Action::Drop,
            "same /56"
        );
        assert_eq!(rrl.check_at(ip("2001:db8:0:ac00::1"), 1), Action::Send);
        // A v4-mapped address counts as its IPv4 /24.
        actions(&rrl, "198.51.100.7", 2, 1);
        assert_eq!(rrl.check_at(ip("::ffff:198.51.100.9"), 1), Action::Drop);
    }

    #[test]
    fn rate_zero_never_limits_and_allocates_nothing() {
        let rrl = RateLimiter::new(0, 2);
        assert!(!rrl.enabled());
        assert!(rrl.slots.is_empty());
        assert!((0..1000).all(|_| rrl.check(ip("192.0.2.1")) == Action::Send));
    }

    #[test]
    fn slip_form_keeps_header_and_question_only() {
        let mut m = Message::response(0x1234, hickory_proto::op::OpCode::Query);
        m.metadata.message_type = MessageType::Response;
        m.metadata.authoritative = true;
        let name = Name::from_ascii("x.vc.example.com.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::TXT));
        m.add_answer(Record::from_rdata(
            name,
            60,
            RData::TXT(TXT::new(vec!["hint".into()])),
        ));
        let full = m.to_bytes().unwrap();
        let mut bytes = full.clone();
        assert!(truncate_to_question(&mut bytes));
        let slipped = Message::from_vec(&bytes).unwrap();
        assert!(slipped.metadata.truncation);
        assert_eq!(slipped.metadata.id, 0x1234);
        assert!(slipped.metadata.authoritative);
        assert_eq!(slipped.queries, m.queries);
        assert!(slipped.answers.is_empty() && slipped.additionals.is_empty());
        assert!(bytes.len() < full.len());

        for bad in [&full[..5], &full[..20]] {
            assert!(!truncate_to_question(&mut bad.to_vec()));
        }
    }
}
