//! Property tests of the counting model against SQLite: the same reports
//! (retries, anonymous ones, upgrades, reports of one second, two zones,
//! a day's history taken in after later days), taken in by the store in
//! batches cut anywhere (with the writer restarted between batches, or
//! not), end in the node-days, version days and daily snapshots the model
//! ([`vcheckd::fleet::Fold`]) makes of them. tests/clickhouse.rs holds
//! ClickHouse to the same model.

mod common;

use proptest::prelude::*;

use common::fleet::{assert_matches_model, case};
use vcheckd::store::reader::SqliteReader;
use vcheckd::store::Store;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_stores_what_the_model_counts(c in case(40), restart in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut store = Store::open(&path).unwrap();
        for batch in c.batches() {
            if restart {
                drop(store);
                store = Store::open(&path).unwrap();
            }
            store.insert_batch(batch).unwrap();
        }
        store.flush_open_day().unwrap();
        drop(store);
        assert_matches_model(&SqliteReader::open(&path).unwrap(), &c, "SQLite");
    }
}
