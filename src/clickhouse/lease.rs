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
//! gives its claim up and skips. The holder renews its lease on every run
//! and between days of a long one, and gives it up when it stops; one
//! that dies loses it when it expires, and another server takes over.
//! The servers' clocks must agree (NTP): expiry is compared across them.

use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::debug;

use super::client::{field, text, ClickHouseError, Client};

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
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    holder: String,
    /// When the holder first claimed it (ns): the earliest fresh claim
    /// holds the lease.
    claimed_at: u64,
    /// Unix seconds (the holder's clock) after which it is free.
    expires: i64,
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
}

/// The holder of every fresh lease in `rows` as of `now`.
fn holder(rows: &[Row], now: i64) -> Option<&Row> {
    rows.iter()
        .filter(|r| r.expires > now)
        .min_by(|a, b| (a.claimed_at, &a.holder).cmp(&(b.claimed_at, &b.holder)))
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
        }
    }

    pub fn holder_name(&self) -> &str {
        &self.holder
    }

    fn rows(&self) -> Result<Vec<Row>, ClickHouseError> {
        let rows = self.client.query(&format!(
            "SELECT holder, claimed_at, expires FROM {}.rollup_lease FINAL
             WHERE lease = '{KEY}'",
            self.client.database()
        ))?;
        rows.iter()
            .map(|r| {
                Ok(Row {
                    holder: text(r, 0)?.to_string(),
                    claimed_at: field(r, 1)?,
                    expires: field(r, 2)?,
                })
            })
            .collect()
    }

    fn write(&self, claimed_at: u64, expires: i64) -> Result<(), ClickHouseError> {
        let row = Insert {
            lease: KEY,
            holder: &self.holder,
            claimed_at,
            expires,
            at: super::rollup::now_nanos(),
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
        // A new claim (none held, or ours nearly expired: claimed again,
        // as another may be claiming it now).
        let claimed_at = super::rollup::now_nanos();
        let sent = Instant::now();
        self.write(claimed_at, now + self.ttl_secs)?;
        if sent.elapsed() > SLOW_CLAIM {
            self.give_up()?;
            return Err(ClickHouseError::Answer(
                "claiming the rollup lease took too long; retrying on the next run".into(),
            ));
        }
        std::thread::sleep(SETTLE);
        let rows = self.rows()?;
        match holder(&rows, crate::clock::unix_now()) {
            Some(h) if h.holder == self.holder => {
                debug!(holder = %self.holder, "rollup lease taken");
                self.held = Some((claimed_at, now + self.ttl_secs));
                self.renewed = Instant::now();
                Ok(())
            }
            other => {
                let err = other.map_or_else(
                    || ClickHouseError::Answer("the rollup lease claim was not read back".into()),
                    busy,
                );
                self.give_up()?;
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
    /// it at once.
    pub fn give_up(&mut self) -> Result<(), ClickHouseError> {
        self.held = None;
        self.write(0, 0)
    }

    pub fn is_held(&self) -> bool {
        self.held.is_some()
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(secs: i64) -> String {
    let t = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        crate::stats::date_of_day(secs.div_euclid(86_400)),
        t / 3_600,
        t / 60 % 60,
        t % 60
    )
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
    fn expiry_reads_as_utc() {
        assert_eq!(utc(86_400 + 3_723), "1970-01-02 01:02:03 UTC");
    }
}
