-- One day ({d}, 0-based, of {DAYS} starting on UTC day {D0}) of the bench
-- fleet's reports, generated inside ClickHouse; benches/clickhouse/run.sh
-- fills in the placeholders and sends it once per day. The fleet follows
-- the counting model of docs/STATS.md as `vcheckd simulate` shapes it:
-- clusters of 4 nodes; 10% of clusters join late, 5% leave; a node misses
-- 13% of days and otherwise reports once a day at a random second; each
-- cluster takes every release after its own lag (exponential, median
-- about 3 days; 5% never upgrade), its 4th node a day after the others
-- (mixed clusters); 5% of nodes withhold their identity (anonymous); 1% of
-- reports reach both name servers (a second row, a second later, ns2).
INSERT INTO vc.reports
SELECT zone, toFixedString(cluster, 32), toFixedString(node, 32), client_time,
       toFixedString(report_id, 24), anonymous, at, toInt32(intDiv(at, 86400)),
       version, version_key, status, 1, if(copy = 0, 'ns1', 'ns2'), toUInt32(4294967295 - at)
FROM (
    SELECT 'vc.example.com' AS zone, number AS n, intDiv(n, 4) AS c,
           toUInt8(sipHash64(n, 1) % 100 < 5) AS anonymous,
           if(anonymous = 1, '00000000000000000000000000000000', lower(hex(sipHash128(concat('c', toString(c)))))) AS cluster,
           if(anonymous = 1, '00000000000000000000000000000000', lower(hex(sipHash128(concat('n', toString(n)))))) AS node,
           if(sipHash64(c, 3) % 100 < 10, toInt64(sipHash64(c, 4) % {DAYS}), toInt64(-1000)) AS joined,
           if(sipHash64(c, 5) % 100 < 5, toInt64(sipHash64(c, 6) % {DAYS}), toInt64(100000)) AS left_on,
           if(sipHash64(c, 7) % 100 < 5, 100000,
              toInt64(-4.3 * log((sipHash64(c, 8) % 1000 + 1) / 1001.))) + if(n % 4 = 3, 1, 0) AS lag,
           greatest(arrayCount(x -> x + lag <= {d}, {RELEASED}), 1) AS vi,
           {VERSIONS}[vi] AS version, {KEYS}[vi] AS version_key, {STATUS}[vi] AS status,
           toInt64(({D0} + {d}) * 86400 + sipHash64(n, {d}, 9) % 86400) AS first_at,
           first_at - toInt64(sipHash64(n, {d}, 10) % 5) AS client_time,
           substring(lower(hex(sipHash128(concat(toString(n), '/', toString({d}))))), 1, 24) AS report_id,
           arrayJoin(if(sipHash64(n, {d}, 11) % 100 < 1, [0, 1], [0])) AS copy,
           first_at + copy AS at
    FROM numbers({NODES})
    WHERE sipHash64(n, {d}, 2) % 100 < 87 AND {d} >= joined AND {d} < left_on
)
