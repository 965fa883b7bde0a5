#!/usr/bin/env bash
# Statistics from ClickHouse on a large fleet: a ClickHouse server of its
# own (Debian's clickhouse-server, from a temp folder on loopback), the
# schema made by `vcheckd clickhouse migrate`, a fleet of NODES nodes over
# DAYS days generated inside ClickHouse (INSERT ... SELECT from numbers()),
# then every `vcheckd stats --store clickhouse://...` subcommand under
# /usr/bin/time -v, the data's size on disk, the server's peak RSS, and the
# cost of each way of counting a report once (FINAL, uniqExact, GROUP BY
# the key), before and after merges.
#
# Usage: benches/clickhouse/run.sh     (after `cargo build --release`)
# Settings (environment): see benches/clickhouse/README.md. Scaled down:
#   NODES=100000 DAYS=30 benches/clickhouse/run.sh
set -eEuo pipefail
trap 'echo "error: run.sh line $LINENO failed (exit status $?)" >&2' ERR

NODES=${NODES:-1000000}
DAYS=${DAYS:-90}
TARGET_MS=${TARGET_MS:-1000}
ADOPTION_VERSION=${ADOPTION_VERSION:-2.4.1}
STATS_TIMEOUT=${STATS_TIMEOUT:-600} # seconds one stats command (or query) may take
FLEET_REBUILD=${FLEET_REBUILD:-0} # 1: load the fleet again even if cached

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${VCHECKD_BIN:-$ROOT/target/release/vcheckd}
SERVER=${CLICKHOUSE_SERVER:-/usr/sbin/clickhouse-server}
TIME=/usr/bin/time
FLEET_DIR=${FLEET_DIR:-$ROOT/target/bench-fleet}
DATA=$FLEET_DIR/clickhouse-${NODES}n-${DAYS}d
TODAY=$(( $(date -u +%s) / 86400 ))

say() { printf '%s\n' "$*"; }
missing=()
[ -x "$TIME" ] || missing+=("/usr/bin/time (Debian: apt-get install -y time)")
[ -x "$SERVER" ] || missing+=("clickhouse-server (Debian: apt-get install -y clickhouse-server)")
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    say "error: the ClickHouse bench needs ${missing[*]}" >&2
    exit 1
fi
if [ ! -x "$BIN" ]; then
    say "error: $BIN not found: run 'cargo build --release' first (or set VCHECKD_BIN)" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vcheckd-ch.XXXXXX")
CH_PID=""
cleanup() {
    if [ -n "$CH_PID" ] && kill -0 "$CH_PID" 2>/dev/null; then
        kill "$CH_PID" 2>/dev/null || true
        wait "$CH_PID" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wall_of() {
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.3f", s }' "$1"
}
rss_of() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# --- ClickHouse --------------------------------------------------------------
HTTP=$(free_port); TCP=$(free_port); INTER=$(free_port)
mkdir -p "$TMP/ch" "$FLEET_DIR"
if [ -d "$DATA" ] && { [ "$FLEET_REBUILD" = 1 ] || [ "$(cat "$DATA/last-day" 2>/dev/null)" != "$TODAY" ]; }; then
    say "cached fleet $DATA is not today's (the default windows end today): loading it again"
    rm -rf "$DATA"
fi
# max_memory_usage: a query that needs more fails, instead of the server
# being killed (the machine is shared).
cat >"$TMP/ch/users.xml" <<'EOF'
<yandex><profiles><default><max_memory_usage>8000000000</max_memory_usage></default></profiles><users><default><password></password>
<networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota>
</default></users><quotas><default/></quotas></yandex>
EOF
cat >"$TMP/ch/config.xml" <<EOF
<yandex><logger><level>warning</level><log>$TMP/ch/log.txt</log><errorlog>$TMP/ch/err.txt</errorlog></logger>
<http_port>$HTTP</http_port><tcp_port>$TCP</tcp_port><interserver_http_port>$INTER</interserver_http_port>
<listen_host>127.0.0.1</listen_host><path>$DATA/</path><tmp_path>$TMP/ch/tmp/</tmp_path>
<users_config>users.xml</users_config><default_profile>default</default_profile>
<default_database>default</default_database><mark_cache_size>536870912</mark_cache_size></yandex>
EOF
(cd "$TMP/ch" && exec "$SERVER" --config-file="$TMP/ch/config.xml" >/dev/null 2>&1) &
CH_PID=$!
ch() { curl -sS --fail-with-body --max-time "$STATS_TIMEOUT" "http://127.0.0.1:$HTTP/" --data-binary @- ; }
for _ in $(seq 1 150); do
    if echo 'SELECT 1' | ch >/dev/null 2>&1; then break; fi
    sleep 0.2
done
echo 'SELECT 1' | ch >/dev/null || { say "error: ClickHouse did not start; see $TMP/ch/err.txt" >&2; exit 1; }
say "ClickHouse $(echo 'SELECT version()' | ch) on 127.0.0.1:$HTTP (pid $CH_PID)"

URL="clickhouse://127.0.0.1:$HTTP/vc"
"$BIN" serve --print-config >"$TMP/vcheckd.toml"
printf '\n[clickhouse]\nurl = "%s"\n' "$URL" >>"$TMP/vcheckd.toml"
"$BIN" clickhouse migrate --config "$TMP/vcheckd.toml"

# --- the fleet ---------------------------------------------------------------
if [ -f "$DATA/last-day" ]; then
    say "fleet: cached in $DATA ($(cat "$DATA/load.txt"))"
else
# The counting model's fleet, as `vcheckd simulate` shapes it: clusters of
# 4 nodes; 10% of clusters join late and 5% leave; a node misses 13% of
# days; one report per node and day at a random second; every cluster
# takes each release after its own lag (exponential, median ~3 days; 5%
# never upgrade), its 4th node a day after the others (mixed clusters);
# 5% of nodes withhold their identity (anonymous); 1% of reports reach
# both name servers (a second row, one second later, from ns2).
D0=$(( TODAY - DAYS + 1 ))
VERSIONS="['1.9.0','2.2.0','2.3.0','2.3.1','2.4.0','2.4.1']"
key() { printf "'%016x%016x%016xff'" "$1" "$2" "$3"; }
KEYS="[$(key 1 9 0),$(key 2 2 0),$(key 2 3 0),$(key 2 3 1),$(key 2 4 0),$(key 2 4 1)]"
STATUS="[3,3,3,2,3,1]"
RELEASED="[$(( -DAYS / 3 )),$(( -DAYS * 2 / 15 )),$(( DAYS / 15 )),$(( DAYS * 4 / 15 )),$(( DAYS * 7 / 15 )),$(( DAYS * 2 / 3 ))]"
say "fleet: $NODES nodes x $DAYS days (days $D0..$TODAY), releases at days $RELEASED of the history"
load_start=$(now_ms)
for d in $(seq 0 $(( DAYS - 1 ))); do
    sed -e "s/{NODES}/$NODES/g; s/{DAYS}/$DAYS/g; s/{D0}/$D0/g; s/{d}/$d/g" \
        -e "s/{VERSIONS}/$VERSIONS/; s/{KEYS}/$KEYS/; s/{STATUS}/$STATUS/; s/{RELEASED}/$RELEASED/" \
        "$ROOT/benches/clickhouse/fleet.sql" | ch
    printf '.'
done
printf '\n'
load_ms=$(( $(now_ms) - load_start ))
rows=$(echo 'SELECT count() FROM vc.reports' | ch)
echo "$rows rows loaded in $(( load_ms / 1000 )) s, $(( rows * 1000 / (load_ms + 1) )) rows/s" >"$DATA/load.txt"
echo "$TODAY" >"$DATA/last-day"
say "fleet: $(cat "$DATA/load.txt")"
fi

disk() {
    echo "SELECT formatReadableSize(sum(bytes_on_disk)), sum(rows), count() FROM system.parts WHERE active AND database = 'vc' AND table = 'reports'" | ch
}
say "on disk (size, rows, parts): $(disk)"

rss_ch() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$CH_PID/status" 2>/dev/null || echo "(server gone)"; }

# --- the rollup ----------------------------------------------------------------
# What statistics read: every day closed from the first (a backfill), one
# day's close, and the open day's refresh, each a `vcheckd clickhouse
# rollup` process of its own (a server's rollup thread keeps the node
# states in memory between refreshes; this reads them each time).
day_date() { date -u -d "@$(( $1 * 86400 ))" +%F; }
rollup_timed() {
    local name=$1; shift
    "$TIME" -v -o "$TMP/t" "$BIN" clickhouse rollup --config "$TMP/vcheckd.toml" "$@" >"$TMP/rollup.out"
    local ms
    ms=$(awk -v s="$(wall_of "$TMP/t")" 'BEGIN { printf "%d", s * 1000 }')
    say "$(printf '| %-32s | %9d | %7s | %s |' "rollup $name" "$ms" "$(rss_of "$TMP/t")" "$(tr '\n' ' ' <"$TMP/rollup.out")")"
}
say "| rollup                           |   wall ms | RSS MB  | what it did |"
rollup_timed "backfill, every day" --from "$(day_date $(( TODAY - DAYS + 1 )))"
# The last day closable now (yesterday, once the grace period after
# midnight is over: the default rollup_grace_secs, 900).
CLOSABLE=$(( ($(date -u +%s) - 900) / 86400 - 1 ))
rollup_timed "one day's close" --from "$(day_date "$CLOSABLE")"
rollup_timed "open-day refresh"
say "clickhouse-server peak RSS so far: $(rss_ch) MB"

# --- stats -------------------------------------------------------------------
# A client that gives up leaves its query running in ClickHouse: end it, so
# that it does not slow what is measured next.
kill_queries() {
    echo "KILL QUERY WHERE query NOT LIKE '%KILL QUERY%' SYNC" | ch >/dev/null 2>&1 || true
}
results=()
stat() {
    local name=$1; shift
    local status=ok
    if ! "$TIME" -v -o "$TMP/t" timeout "$STATS_TIMEOUT" "$BIN" stats --store "$URL" "$@" >"$TMP/out" 2>"$TMP/err"; then
        status="failed: $(tail -c 300 "$TMP/err" | tr '\n' ' ')"
        kill_queries
    fi
    local ms
    ms=$(awk -v s="$(wall_of "$TMP/t")" 'BEGIN { printf "%d", s * 1000 }')
    local verdict=ok
    [ "$ms" -le "$TARGET_MS" ] || verdict=$(awk -v m="$ms" -v t="$TARGET_MS" 'BEGIN { printf "MISS x%.1f", m / t }')
    [ "$status" = ok ] || verdict=$status
    results+=("$(printf '| %-32s | %9d | %7s | %s |' "stats $name" "$ms" "$(rss_of "$TMP/t")" "$verdict")")
    say "${results[-1]}"
    if ! kill -0 "$CH_PID" 2>/dev/null; then
        say "error: clickhouse-server ended (out of memory?); its log: $TMP/ch/err.txt (KEEP_TMP=1 keeps it)" >&2
        exit 1
    fi
}
run_stats() {
    say "| command                          |   wall ms | RSS MB  | verdict (target $TARGET_MS ms) |"
    stat versions versions
    stat summary summary
    stat trend trend
    stat "trend --by week" trend --by week
    stat "adoption $ADOPTION_VERSION" adoption "$ADOPTION_VERSION"
    say "clickhouse-server peak RSS so far: $(rss_ch) MB"
}
# --- counting each report once: three ways, before and after merges ----------
q() {
    local sql=$1 t0 out
    t0=$(now_ms)
    out=$(printf '%s FORMAT TabSeparated' "$sql" | ch 2>&1 | head -c 300 | tr '\n' ' ') || kill_queries
    printf '%6d ms  %s  <- %s\n' "$(( $(now_ms) - t0 ))" "$out" "$sql"
}
dedup() {
    q "SELECT count() FROM vc.reports"
    q "SELECT count() FROM vc.reports FINAL"
    q "SELECT uniqExact(client_time, report_id) FROM vc.reports"
    q "SELECT count() FROM (SELECT 1 FROM vc.reports GROUP BY zone, cluster, node, client_time, report_id)"
    q "SELECT version, count() FROM vc.reports FINAL WHERE day >= $(( TODAY - 6 )) GROUP BY version ORDER BY version"
    q "SELECT version, uniqExact(client_time, report_id) FROM vc.reports WHERE day >= $(( TODAY - 6 )) GROUP BY version ORDER BY version"
    q "SELECT version, count() FROM (SELECT any(version) AS version FROM vc.reports WHERE day >= $(( TODAY - 6 )) GROUP BY zone, cluster, node, client_time, report_id) GROUP BY version ORDER BY version"
}
say "stats:"
run_stats
if [ ! -f "$DATA/merged" ]; then
    say "counting each report once, before merges (parts: $(disk)):"
    dedup
    t0=$(now_ms)
    echo 'OPTIMIZE TABLE vc.reports FINAL' |
        curl -sS --fail-with-body --max-time 3600 "http://127.0.0.1:$HTTP/" --data-binary @-
    say "OPTIMIZE TABLE ... FINAL (merge every partition): $(( $(now_ms) - t0 )) ms; after: $(disk)"
    touch "$DATA/merged"
else
    say "(the cached fleet is merged already: FLEET_REBUILD=1 for the figures before merges)"
fi
say "counting each report once, after merges:"
dedup
say "clickhouse-server peak RSS: $(rss_ch) MB"
