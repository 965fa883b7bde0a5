//! Response rate limiting (RRL) per client prefix and answer class, as NSD
//! and Knot do it.
//!
//! UDP source addresses can be forged, so without a limit anyone can aim our
//! answers at a victim. Answers to one prefix (/24 for IPv4, /56 for IPv6:
//! what one site or customer usually holds) beyond `rate` a second are
//! limited: every `slip`-th limited answer is still sent, truncated (TC=1,
//! no records), so that a real resolver behind the prefix retries over TCP,
//! which cannot be forged; the others are dropped. TCP is never limited.
//!
//! Answers are in one of two [`Class`]es, by what they give an attacker:
//! [`Class::Large`] answers (512 bytes or more, or more than 3 times the
//! smallest query that asks for them: the signed policy at a `_policy` name,
//! or a big record of the zone file) count against `rate` like every answer
//! and against their own smaller `large_rate` as well; [`Class::Normal`]
//! answers against `rate` only. So the limits bound the bytes a second one
//! victim prefix can be sent: at most `large_rate` large answers (1,232
//! bytes at the most) and the rest of `rate` in answers under 512 bytes.
//! The class is read from the answer's bytes alone (its length and its
//! question), so it holds for any record the zone file adds, and padding a
//! query does not move an answer to the normal class: the factor is taken
//! against the smallest query, not the one received.
//!
//! The table is a fixed array of atomics, allocated once: no allocation,
//! lock or log line per packet, and the UDP workers share it. A prefix
//! hashes to a pair of adjacent slots, the count of its answers and of its
//! large answers in the current second (NSD's per-second counting; a burst
//! straddling a second boundary can get up to twice the rate). Prefixes
//! are hashed with a per-process random seed, so nobody can pick a prefix
//! that collides with a victim's; a collision only makes limiting a little
//! stricter for the prefixes that share a pair.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Slots in the table: 512 KiB of counters, 32,768 pairs. With a few
/// thousand active resolver prefixes, collisions are rare.
const SLOTS: usize = 1 << 16;

/// Answers of this many bytes or more are large: more than a DNS message
/// over UDP could hold before EDNS (RFC 1035), and above the largest normal
/// answer measured (404 bytes: a report's answer with a small policy).
/// Knot's LARGE class starts at 1,024; half that bounds the normal class's
/// worst case to 511 bytes an answer.
pub const LARGE_BYTES: usize = 512;

/// Answers more than this many times the smallest query that asks for them
/// are large too. The policy at a `_policy` name is 3.8 (a one-release
/// policy) to 17.4 times its query (100 releases, 20 advisories), a big
/// zone-file record at a short name more; what vcheckd serves otherwise
/// stays at or under 2.2 (the apex SOA; tests/amplification.rs).
pub const LARGE_FACTOR: usize = 3;

/// An OPT record without options: what the smallest query that can get an
/// answer over 512 bytes carries besides its header and question.
const OPT_BYTES: usize = 11;

/// What an answer gives an attacker who aims it at someone else, and so
/// which budgets it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Under [`LARGE_BYTES`] and at most [`LARGE_FACTOR`] times its
    /// smallest query: counts against `rate`.
    Normal,
    /// [`LARGE_BYTES`] or more, or more than [`LARGE_FACTOR`] times its
    /// smallest query: counts against `rate` and against `large_rate`.
    Large,
}

impl Class {
    pub const ALL: [Class; 2] = [Class::Normal, Class::Large];

    /// The class's name in metrics (`class` label) and documents.
    pub fn name(self) -> &'static str {
        match self {
            Class::Normal => "normal",
            Class::Large => "large",
        }
    }

    /// The class's position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class of an encoded response. The smallest query asking for it
    /// is its header and question (echoed as received) plus an OPT record;
    /// bytes a query adds past those (padding, cookies) do not count, so a
    /// padded query does not make its answer look smaller than it is.
    pub fn of(response: &[u8]) -> Class {
        if response.len() >= LARGE_BYTES {
            return Class::Large;
        }
        let smallest = question_end(response).map_or(response.len(), |end| end + OPT_BYTES);
        if response.len() > LARGE_FACTOR * smallest {
            Class::Large
        } else {
            Class::Normal
        }
    }
}

/// What to do with one UDP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Within the budgets: send it as built.
    Send,
    /// Over a budget, and this one slips: send it truncated.
    Slip(Class),
    /// Over a budget: send nothing.
    Drop(Class),
}

/// The limits, per client prefix and second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Answers a second, of every class; 0 turns limiting off.
    pub rate: u32,
    /// Of those, large answers a second; 0: no budget of their own.
    pub large_rate: u32,
    /// Every `slip`-th limited answer is sent truncated; 0: none is.
    pub slip: u32,
}

pub struct RateLimiter {
    limits: Limits,
    seed: u64,
    start: Instant,
    /// Per slot: the second it counts (high 32 bits) and the answers
    /// counted in it (low 32 bits).
    slots: Box<[AtomicU64]>,
}

impl RateLimiter {
    pub fn new(limits: Limits) -> Self {
        Self::with_seed(limits, rand::random())
    }

    fn with_seed(limits: Limits, seed: u64) -> Self {
        let slots = if limits.rate == 0 { 0 } else { SLOTS };
        RateLimiter {
            limits,
            seed,
            start: Instant::now(),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.limits.rate != 0
    }

    /// Counts `response` to `client` and says what to do with it.
    pub fn check(&self, client: IpAddr, response: &[u8]) -> Action {
        if !self.enabled() {
            return Action::Send;
        }
        // Seconds since start fit 32 bits for 136 years.
        let now = self.start.elapsed().as_secs() as u32;
        self.check_at(client, Class::of(response), now)
    }

    fn check_at(&self, client: IpAddr, class: Class, now: u32) -> Action {
        // The prefix's pair of slots: every answer, then large ones.
        let every = (mix(prefix(client) ^ self.seed) as usize) & (self.slots.len() - 1) & !1;
        let Limits {
            rate,
            large_rate,
            slip,
        } = self.limits;
        // Every answer counts, limited or not: a flood stays limited for
        // as long as it lasts.
        let mut over = self.count(every, now).checked_sub(rate);
        if class == Class::Large && large_rate != 0 {
            let large = self.count(every + 1, now).checked_sub(large_rate);
            over = over.filter(|&o| o > 0).or(large);
        }
        match over {
            None | Some(0) => Action::Send,
            Some(over) if slip != 0 && over.is_multiple_of(slip) => Action::Slip(class),
            Some(_) => Action::Drop(class),
        }
    }

    /// Adds one to slot `i`'s count for the second `now`; returns the
    /// count.
    fn count(&self, i: usize, now: u32) -> u32 {
        let slot = &self.slots[i];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (second, count) = ((current >> 32) as u32, current as u32);
            let count = if second == now {
                count.saturating_add(1)
            } else {
                1
            };
            let next = (u64::from(now) << 32) | u64::from(count);
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return count,
                Err(seen) => current = seen,
            }
        }
    }
}

/// The client's prefix as a key: an IPv4 /24, or the top 56 bits of an
/// IPv6 address tagged with bit 63 so that no IPv6 prefix equals an IPv4
/// one.
fn prefix(client: IpAddr) -> u64 {
    match client {
        IpAddr::V4(v4) => u64::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u64::from(u32::from(v4) & 0xffff_ff00),
            None => ((u128::from(v6) >> 72) as u64) | (1 << 63),
        },
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
    let Some(end) = question_end(response) else {
        return false;
    };
    response.truncate(end);
    response[2] |= 0x02; // TC
    response[6..12].fill(0); // ANCOUNT, NSCOUNT, ARCOUNT
    true
}

/// The offset just past the question section of a DNS message, if the
/// bytes hold its header and questions.
fn question_end(message: &[u8]) -> Option<usize> {
    let questions = u16::from_be_bytes([*message.get(4)?, *message.get(5)?]);
    let mut end = 12;
    for _ in 0..questions {
        match skip_name(message, end) {
            Some(after) if after + 4 <= message.len() => end = after + 4,
            _ => return None,
        }
    }
    (end <= message.len()).then_some(end)
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
    use hickory_proto::op::{Edns, Message, MessageType, Query};
    use hickory_proto::rr::rdata::TXT;
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use hickory_proto::serialize::binary::BinEncodable;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limiter(rate: u32, large_rate: u32, slip: u32) -> RateLimiter {
        RateLimiter::with_seed(
            Limits {
                rate,
                large_rate,
                slip,
            },
            1,
        )
    }

    fn actions(rrl: &RateLimiter, client: &str, class: Class, n: usize, now: u32) -> Vec<Action> {
        (0..n)
            .map(|_| rrl.check_at(ip(client), class, now))
            .collect()
    }

    /// A response to a TXT question at `name` with `data` bytes of TXT
    /// data, with an OPT record, as the responder writes it.
    fn txt_response(name: &str, data: usize) -> Vec<u8> {
        let mut m = Message::response(0x1234, hickory_proto::op::OpCode::Query);
        m.metadata.message_type = MessageType::Response;
        m.metadata.authoritative = true;
        let name = Name::from_ascii(name).unwrap();
        m.add_query(Query::query(name.clone(), RecordType::TXT));
        let strings = (0..data.div_ceil(255))
            .map(|i| "x".repeat((data - i * 255).min(255)))
            .collect();
        m.add_answer(Record::from_rdata(name, 60, RData::TXT(TXT::new(strings))));
        m.set_edns(Edns::new());
        m.to_bytes().unwrap()
    }

    #[test]
    fn over_the_rate_every_second_limited_answer_slips() {
        let rrl = limiter(5, 2, 2);
        let got = actions(&rrl, "192.0.2.1", Class::Normal, 11, 7);
        use Action::*;
        let n = Class::Normal;
        assert_eq!(
            got,
            [
                Send,
                Send,
                Send,
                Send,
                Send,
                Drop(n),
                Slip(n),
                Drop(n),
                Slip(n),
                Drop(n),
                Slip(n)
            ]
        );
        // A new second starts a new count.
        assert_eq!(actions(&rrl, "192.0.2.1", n, 5, 8), [Send; 5]);
    }

    #[test]
    fn large_answers_have_a_smaller_budget_inside_the_rate() {
        use Action::*;
        let (n, l) = (Class::Normal, Class::Large);
        let rrl = limiter(6, 2, 2);
        // Two large answers a second; the third and fourth are limited by
        // the large budget, with slip counted over it...
        assert_eq!(
            actions(&rrl, "192.0.2.1", l, 4, 1),
            [Send, Send, Drop(l), Slip(l)]
        );
        // ...while normal answers still go, up to the rate, which counted
        // the four large ones too.
        assert_eq!(actions(&rrl, "192.0.2.9", n, 3, 1), [Send, Send, Drop(n)]);
        // Over the rate, every class is limited and slips on its count.
        assert_eq!(rrl.check_at(ip("192.0.2.1"), l, 1), Slip(l));
        // Another prefix, and the next second, start afresh.
        assert_eq!(actions(&rrl, "192.0.3.1", l, 2, 1), [Send, Send]);
        assert_eq!(actions(&rrl, "192.0.2.1", l, 2, 2), [Send, Send]);

        // Large rate 0: large answers have no budget of their own.
        let rrl = limiter(3, 0, 1);
        assert_eq!(
            actions(&rrl, "192.0.2.1", l, 4, 1),
            [Send, Send, Send, Slip(l)]
        );
    }

    #[test]
    fn a_slash_24_is_one_client_and_its_neighbour_another() {
        let rrl = limiter(3, 3, 1);
        let n = Class::Normal;
        actions(&rrl, "192.0.2.1", n, 3, 1);
        assert_eq!(rrl.check_at(ip("192.0.2.200"), n, 1), Action::Slip(n));
        // Another /24 has its own slots (with this seed; 1 in 32,768 would not).
        assert_eq!(rrl.check_at(ip("192.0.3.1"), n, 1), Action::Send);
    }

    #[test]
    fn a_slash_56_is_one_client() {
        let rrl = limiter(2, 2, 0);
        let n = Class::Normal;
        actions(&rrl, "2001:db8:0:ab00::1", n, 2, 1);
        assert_eq!(
            rrl.check_at(ip("2001:db8:0:abff:1::9"), n, 1),
            Action::Drop(n),
            "same /56"
        );
        assert_eq!(rrl.check_at(ip("2001:db8:0:ac00::1"), n, 1), Action::Send);
        // A v4-mapped address counts as its IPv4 /24.
        actions(&rrl, "198.51.100.7", n, 2, 1);
        assert_eq!(
            rrl.check_at(ip("::ffff:198.51.100.9"), n, 1),
            Action::Drop(n)
        );
    }

    #[test]
    fn rate_zero_never_limits_and_allocates_nothing() {
        let rrl = RateLimiter::new(Limits {
            rate: 0,
            large_rate: 1,
            slip: 2,
        });
        assert!(!rrl.enabled());
        assert!(rrl.slots.is_empty());
        let big = txt_response("1._policy.vc.example.com.", 900);
        assert!((0..1000).all(|_| rrl.check(ip("192.0.2.1"), &big) == Action::Send));
    }

    #[test]
    fn the_class_is_the_answers_size_against_its_smallest_query() {
        // The policy at a short name: 26 bytes of name, 53 of smallest
        // query, so more than 159 bytes is large.
        let policy = "1._policy.vc.example.com.";
        assert_eq!(Class::of(&txt_response(policy, 50)), Class::Normal);
        assert_eq!(Class::of(&txt_response(policy, 120)), Class::Large);
        // The same data at a report-sized name stays normal...
        let long = format!("{}.vc.example.com.", vec!["a".repeat(63); 3].join("."));
        let report = txt_response(&long, 120);
        assert_eq!(Class::of(&report), Class::Normal);
        // ...up to 512 bytes, whatever the name.
        assert_eq!(txt_response(&long, 262).len(), LARGE_BYTES - 1);
        assert_eq!(Class::of(&txt_response(&long, 262)), Class::Normal);
        assert_eq!(Class::of(&txt_response(&long, 263)), Class::Large);
        // Header-only errors, and bytes with no readable question.
        assert_eq!(Class::of(&[0u8; 12]), Class::Normal);
        assert_eq!(Class::of(&report[..30]), Class::Normal);
        assert_eq!(Class::of(&[0xff; 400]), Class::Normal);
    }

    #[test]
    fn slip_form_keeps_header_and_question_only() {
        let full = txt_response("x.vc.example.com.", 4);
        let m = Message::from_vec(&full).unwrap();
        let mut bytes = full.clone();
        assert!(truncate_to_question(&mut bytes));
        let slipped = Message::from_vec(&bytes).unwrap();
        assert!(slipped.metadata.truncation);
        assert_eq!(slipped.metadata.id, 0x1234);
        assert!(slipped.metadata.authoritative);
        assert_eq!(slipped.queries, m.queries);
        assert!(slipped.answers.is_empty() && slipped.additionals.is_empty());
        assert!(slipped.edns.is_none());
        assert!(bytes.len() < full.len());

        for bad in [&full[..5], &full[..20]] {
            assert!(!truncate_to_question(&mut bad.to_vec()));
        }
    }
}
