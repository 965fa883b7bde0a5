//! The replay window: how far a report's client timestamp may be from the
//! time the server received it.
//!
//! A frame seen on the wire can be sent again by anyone, at any time. The
//! store deduplicates by report id, but only for as long as it keeps the
//! raw rows (`retention_days`); a frame replayed after that would count
//! again. Refusing reports whose client timestamp is older than the window
//! closes that gap, provided the rows outlive the window, which
//! [`crate::config`] enforces at load. The check runs in the processor,
//! not on the answer path: with protocol v2 the timestamp is known only
//! after decryption there. It compares with the time the report was
//! received (kept in the journal), so a backlog taken in after a restart
//! is judged as it would have been on arrival.

use crate::report::ReceivedReport;

/// Why a report is outside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outside {
    /// Older than `replay_window_secs` when received: a replay, or a client
    /// clock far behind.
    TooOld,
    /// Ahead of the server's clock by more than `replay_future_secs`.
    Future,
}

impl Outside {
    /// Stable labels for metrics and the database's counters, in index order.
    pub const REASONS: [&'static str; 2] = ["too_old", "future"];

    /// Index of this reason in [`Self::REASONS`].
    pub fn index(self) -> usize {
        match self {
            Outside::TooOld => 0,
            Outside::Future => 1,
        }
    }
}

/// The accepted span around the receive time, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// How far the client timestamp may lie before the receive time.
    pub back_secs: u64,
    /// How far it may lie after it (client clocks run ahead).
    pub ahead_secs: u64,
}

impl ReplayWindow {
    /// One day back: reports arrive within seconds (a resolver's retries
    /// included), so a day is generous for clocks that run behind, and
    /// short beside the 30 days raw rows are kept by default. One hour
    /// ahead: a client clock that is wrong by more is rarely only a little
    /// wrong, and a report dated in the future would keep its id out of
    /// pruning's reach no longer than any other.
    pub const DEFAULT: ReplayWindow = ReplayWindow {
        back_secs: 86_400,
        ahead_secs: 3_600,
    };

    /// The longest a replay of an accepted frame can come after the first
    /// delivery and still be accepted: raw rows (the deduplication memory)
    /// must be kept at least this long.
    pub fn span_secs(&self) -> u64 {
        self.back_secs.saturating_add(self.ahead_secs)
    }

    /// Whether `report` was inside the window when it was received.
    pub fn check(&self, report: &ReceivedReport) -> Result<(), Outside> {
        let sent = i128::from(report.report.payload.timestamp);
        let received = i128::from(report.received_at);
        if sent < received - i128::from(self.back_secs) {
            Err(Outside::TooOld)
        } else if sent > received + i128::from(self.ahead_secs) {
            Err(Outside::Future)
        } else {
            Ok(())
        }
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::Status;
    use crate::protocol::{Identity, KeyId, Payload, Report, ReportId, ZoneName};

    fn report(sent: u64, received_at: i64) -> ReceivedReport {
        ReceivedReport {
            report: Report {
                id: ReportId([1; 12]),
                key_id: KeyId(1),
                payload: Payload {
                    timestamp: sent,
                    identity: Identity::Withheld,
                    version: semver::Version::new(1, 0, 0),
                },
            },
            zone: ZoneName::new("vc.example.com").unwrap(),
            received_at,
            status: Status::UpToDate,
        }
    }

    #[test]
    fn edges_are_inside_and_one_second_past_is_outside() {
        let w = ReplayWindow {
            back_secs: 100,
            ahead_secs: 10,
        };
        let now = 1_800_000_000;
        assert_eq!(w.check(&report(now as u64, now)), Ok(()));
        assert_eq!(w.check(&report(now as u64 - 100, now)), Ok(()));
        assert_eq!(w.check(&report(now as u64 + 10, now)), Ok(()));
        assert_eq!(
            w.check(&report(now as u64 - 101, now)),
            Err(Outside::TooOld)
        );
        assert_eq!(w.check(&report(now as u64 + 11, now)), Err(Outside::Future));
        // Extremes do not overflow.
        assert_eq!(w.check(&report(u64::MAX, now)), Err(Outside::Future));
        assert_eq!(w.check(&report(0, i64::MAX)), Err(Outside::TooOld));
        assert_eq!(w.check(&report(0, i64::MIN)), Err(Outside::Future));
    }

    #[test]
    fn reasons_follow_their_index() {
        for why in [Outside::TooOld, Outside::Future] {
            assert!(Outside::REASONS[why.index()].len() > 3);
        }
        assert_eq!(Outside::REASONS[Outside::Future.index()], "future");
    }
}
