//! Counter deltas: what the answer path's counters (queries, rejected
//! names, drops...) gained since they were last taken, dated the day they
//! are taken. SQLite's processor commits the gains with each batch; the
//! ClickHouse shipper adds them to its run's totals. Both read the same
//! running counters of the process, through [`CounterBase`].

use std::collections::HashMap;

use crate::clock::Day;

/// A counter's gain on one day, persisted with the batch it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterDelta {
    pub day: Day,
    pub name: String,
    pub delta: u64,
}

/// Counter values as last taken; a reading's gains are measured against
/// them. A counter not taken before starts at zero (the process's own
/// counters start at zero with it).
#[derive(Debug, Clone, Default)]
pub struct CounterBase {
    taken: HashMap<String, u64>,
}

impl CounterBase {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Each counter of `reading` (name, value) that gained since taken,
    /// with its gain, dated `day`.
    #[must_use]
    pub fn deltas(&self, reading: &[(String, u64)], day: Day) -> Vec<CounterDelta> {
        reading
            .iter()
            .filter_map(|(name, value)| {
                let before = self.taken.get(name).copied().unwrap_or(0);
                let delta = value.saturating_sub(before);
                (delta > 0).then(|| CounterDelta {
                    day,
                    name: name.clone(),
                    delta,
                })
            })
            .collect()
    }

    /// Takes `reading` as the new base (its gains are counted).
    pub fn take(&mut self, reading: Vec<(String, u64)>) {
        self.taken.extend(reading);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn gains_since_the_last_reading_taken() {
        let mut base = CounterBase::new();
        let first = reading(&[("a", 3), ("b", 0)]);
        let d = base.deltas(&first, Day(5));
        assert_eq!(
            d,
            [CounterDelta {
                day: Day(5),
                name: "a".into(),
                delta: 3
            }]
        );
        // Not taken (a commit that failed): the same gains again.
        assert_eq!(base.deltas(&first, Day(5)), d);
        base.take(first);
        let second = reading(&[("a", 4), ("b", 2), ("c", 1)]);
        let gains: Vec<(String, u64)> = base
            .deltas(&second, Day(6))
            .into_iter()
            .map(|d| (d.name, d.delta))
            .collect();
        assert_eq!(gains, reading(&[("a", 1), ("b", 2), ("c", 1)]));
        base.take(second);
        assert!(base.deltas(&reading(&[("a", 4)]), Day(6)).is_empty());
    }
}
