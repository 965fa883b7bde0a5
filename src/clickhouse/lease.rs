//! The rollup lease: one rollup at a time over a database.
//!
//! Two rollups running at once write rows with different `computed_at`;
//! the newer wins per key, but keys only the older run produced stay
//! (the newer one may not know them, having read other stored rows), and
//! a run's multi-block inserts are visible half done to the other. So a
//! run first takes the lease, a row of `rollup_lease` per holder (a name
//! server's name and a random id per process): the holder is the one of
//! the fresh leases (not expired) claimed first, ties going to the
//! smaller holder name. A claim is inserted, left a second for other
//! claims to land, and read back; a run that is not the holder then
//! gives its claim up and skips. The holder renews its lease between
//! days of a long run and gives it up when the run ends; one that dies
//! loses it when it expires.
//!
//! The name servers' rollup threads also skip their turn when another
//! server's run ended within their interval (its release is recent), so
//! that one server keeps doing the work while it runs, not every server
//! in turn; another takes over once a whole interval passes without it.
//! Between runs nobody holds the lease, so `vcheckd clickhouse rollup`
//! gets its turn. The servers' clocks must agree (NTP): times are
//! compared across them.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::client::{ClickHouseError, Client};

/// The one lease key.
const KEY: &str = "rollup";

/// How long claims are left to land before the holder is read back.
const SETTLE: Duration = Duration::from_secs(1);

/// A claim whose insert took longer than this may land after another
/// server read the claims back: it is given up rather than trusted. A
/// later claim is read back at least [`SETTLE`] after this one was sent,
/// so a claim acknowledged within it is seen.
const SLOW_CLAIM: Duration = Duration::from_millis(900);

/// A lease row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Row {
    holder: String,
    /// When the holder first claimed it (ns): the earliest fresh claim
    /// holds the lease.
    claimed_at: u64,
    /// Unix seconds (the holder's clock) after which it is free.
    expires: i64,
    /// When the row was written (ns): a released lease (`expires` 0,
    /// `claimed_at` not 0) is when that run ended.
    at: u64,
}

#[derive(Serialize)]
struct Insert<'a> {
    lease: &'a str,
    holder: &'a str,
    claimed_at: u64,
    expires: i64,
    at: u64,
}

/// This process's side of the lease.
pub(crate) struct Lease {
    client: Client,
    holder: String,
    ttl_secs: i64,
    /// The claim this process holds: its time and its expiry.
    held: Option<(u64, i64)>,
    renewed: Instant,
    /// Skip while another holder's run ended less than this ago (the
    /// rollup threads); `None`: only a lease held counts (by hand).
    defer: Option<Duration>,
}

/// The holder of every fresh lease in `rows` as of `now`.
fn holder(rows: &[Row], now: i64) -> Option<&Row> {
    rows.iter()
        .filter(|r| r.expires > now)
        .min_by(|a, b| (a.claimed_at, &a.holder).cmp(&(b.claimed_at, &b.holder)))
}

/// Another holder's latest run that ended (or renewed) after `since`
/// (ns): released rows with a claim time, and leases held.
fn ran_since<'a>(rows: &'a [Row], me: &str, since: u64) -> Option<&'a Row> {
    rows.iter()
        .filter(|r| r.holder != me && r.claimed_at > 0 && r.at > since)
        .max_by_key(|r| r.at)
}

impl Lease {
    /// `server`: this name server's name; a random id is added, so that
    /// two processes (a daemon and `vcheckd clickhouse rollup`) differ.
    pub fn new(client: Client, server: &str, ttl: Duration) -> Self {
        Lease {
            client,
            holder: format!("{server}/{:08x}", rand::random::<u32>()),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 4),
            held: None,
            renewed: Instant::now(),
            defer: None,
        }
    }

    /// Skips, too, while another holder's run ended less than `interval`
    /// ago: for the name servers' rollup threads.
    pub fn defer_to_recent(&mut self, interval: Duration) {
        self.defer = Some(interval);
    }

    pub fn holder_name(&self) -> &str {
        &self.holder
    }

    fn rows(&self) -> Result<Vec<Row>, ClickHouseError> {
        self.client.rows(&format!(
            "SELECT holder, claimed_at, expires, at FROM {}.rollup_lease FINAL
             WHERE lease = '{KEY}'",
            self.client.database()
        ))
    }

    fn write(&self, claimed_at: u64, expires: i64) -> Result<(), ClickHouseError> {
        let row = Insert {
            lease: KEY,
            holder: &self.holder,
            claimed_at,
            expires,
            at: crate::clock::now_nanos(),
        };
        let body = serde_json::to_vec(&row)
            .map_err(|e| ClickHouseError::Answer(format!("lease row: {e}")))?;
        self.client.insert_json(
            &format!("{}.rollup_lease", self.client.database()),
            &body,
            &[("insert_distributed_sync", "1")],
        )
    }

    /// Takes the lease, or renews it when held: an error
    /// [`ClickHouseError::RollupBusy`] when another holds it.
    pub fn acquire(&mut self) -> Result<(), ClickHouseError> {
        let now = crate::clock::unix_now();
        let rows = self.rows()?;
        match holder(&rows, now) {
            Some(h) if h.holder != self.holder => {
                self.held = None;
                return Err(busy(h));
            }
            // Held, with time to spare: renewed as claimed.
            Some(h) if h.expires - now > self.ttl_secs / 3 => {
                self.held = Some((h.claimed_at, h.expires));
                return self.renew();
            }
            _ => {}
        }
        if let Some(recent) = self.defer {
            let since = crate::clock::now_nanos()
                .saturating_sub(u64::try_from(recent.as_nanos()).unwrap_or(u64::MAX));
            if let Some(r) = ran_since(&rows, &self.holder, since) {
                let next = i64::try_from((r.at / 1_000_000_000).saturating_add(recent.as_secs()))
                    .unwrap_or(i64::MAX);
                return Err(ClickHouseError::RollupBusy {
                    holder: r.holder.clone(),
                    expires: next,
                });
            }
        }
        // A new claim (none held, or ours nearly expired: claimed again,
        // as another may be claiming it now).
        let claimed_at = crate::clock::now_nanos();
        let sent = Instant::now();
        self.write(claimed_at, now + self.ttl_secs)?;
        // Held until read back otherwise: a claim left in place by an
        // error below is given up by the caller's release.
        self.held = Some((claimed_at, now + self.ttl_secs));
        if sent.elapsed() > SLOW_CLAIM {
            self.drop_claim()?;
            return Err(ClickHouseError::Answer(
                "claiming the rollup lease took too long; retrying on the next run".into(),
            ));
        }
        std::thread::sleep(SETTLE);
        let rows = self.rows()?;
        match holder(&rows, crate::clock::unix_now()) {
            Some(h) if h.holder == self.holder => {
                debug!(holder = %self.holder, "rollup lease taken");
                self.renewed = Instant::now();
                Ok(())
            }
            other => {
                let err = other.map_or_else(
                    || ClickHouseError::Answer("the rollup lease claim was not read back".into()),
                    busy,
                );
                self.drop_claim()?;
                Err(err)
            }
        }
    }

    /// Extends the lease held by another ttl. An error if it expired
    /// meanwhile (another server may have taken over).
    pub fn renew(&mut self) -> Result<(), ClickHouseError> {
        let now = crate::clock::unix_now();
        let Some((claimed_at, expires)) = self.held else {
            return Err(ClickHouseError::Answer(
                "the rollup lease is not held".into(),
            ));
        };
        if expires <= now {
            self.held = None;
            return Err(ClickHouseError::Answer(
                "the rollup lease expired during the run (a run longer than its ttl); \
                 another server may have taken over"
                    .into(),
            ));
        }
        self.write(claimed_at, now + self.ttl_secs)?;
        self.held = Some((claimed_at, now + self.ttl_secs));
        self.renewed = Instant::now();
        Ok(())
    }

    /// Renews the lease if a tenth of its ttl has passed since: between
    /// days of a long run.
    pub fn keep(&mut self) -> Result<(), ClickHouseError> {
        let tenth = u64::try_from(self.ttl_secs / 10).unwrap_or(60);
        if self.renewed.elapsed() >= Duration::from_secs(tenth) {
            self.renew()?;
        }
        Ok(())
    }

    /// Gives the lease (or a claim) up, so that another server can take
    /// it at once. It keeps its claim time in the row: a run ended then
    /// (see [`defer_to_recent`](Self::defer_to_recent)).
    /// Still held after an error: the caller tries again.
    pub fn give_up(&mut self) -> Result<(), ClickHouseError> {
        let claimed_at = self.held.map_or(0, |(c, _)| c);
        self.write(claimed_at, 0)?;
        self.held = None;
        Ok(())
    }

    /// Withdraws a claim that did not win (or landed too slowly): written
    /// without a claim time, so that no server defers to it as to a run.
    fn drop_claim(&mut self) -> Result<(), ClickHouseError> {
        self.write(0, 0)?;
        self.held = None;
        Ok(())
    }

    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

fn busy(h: &Row) -> ClickHouseError {
    ClickHouseError::RollupBusy {
        holder: h.holder.clone(),
        expires: h.expires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(holder: &str, claimed_at: u64, expires: i64) -> Row {
        Row {
            holder: holder.into(),
            claimed_at,
            expires,
            at: claimed_at,
        }
    }

    #[test]
    fn the_earliest_fresh_claim_holds_and_ties_go_to_the_smaller_name() {
        let rows = [row("b", 5, 100), row("a", 7, 100), row("c", 1, 50)];
        assert_eq!(holder(&rows, 60).map(|r| r.holder.as_str()), Some("b"));
        assert_eq!(holder(&rows, 10).map(|r| r.holder.as_str()), Some("c"));
        let tie = [row("y", 5, 100), row("x", 5, 100)];
        assert_eq!(holder(&tie, 60).map(|r| r.holder.as_str()), Some("x"));
        assert_eq!(holder(&tie, 100), None);
    }

    #[test]
    fn a_recent_run_of_another_defers_a_turn_and_a_lost_claim_does_not() {
        let ran = Row {
            at: 500,
            ..row("a", 100, 0)
        };
        let lost = Row {
            at: 900,
            ..row("b", 0, 0)
        };
        let mine = Row {
            at: 950,
            ..row("me", 300, 0)
        };
        let rows = [ran, lost, mine];
        assert_eq!(
            ran_since(&rows, "me", 400).map(|r| r.holder.as_str()),
            Some("a")
        );
        assert_eq!(ran_since(&rows, "me", 500), None);
        assert_eq!(
            ran_since(&rows, "a", 400).map(|r| r.holder.as_str()),
            Some("me")
        );
    }
}
