#!/usr/bin/env bash
# Statistics on a large simulated fleet: every `vcheckd stats` subcommand
# under /usr/bin/time -v (wall time, max RSS), then `vcheckd serve` on the
# same database with each /api/v1 endpoint, the dashboard and /metrics
# timed with curl (first request, uncached), and the server's peak RSS.
#
# Usage: benches/stats/run.sh        (after `cargo build --release`)
# Settings (environment): see benches/stats/README.md. Scaled down:
#   FLEET_CLUSTERS=2000 FLEET_DAYS=30 benches/stats/run.sh
set -eEuo pipefail
trap 'echo "error: run.sh line $LINENO failed (exit status $?)" >&2' ERR

FLEET_CLUSTERS=${FLEET_CLUSTERS:-67000}  # about 250,000 nodes (3.73 per cluster on average)
FLEET_DAYS=${FLEET_DAYS:-90}
SEED=1
ADOPTION_VERSION=${ADOPTION_VERSION:-2.4.1} # a released version of the embedded default
TARGET_MS=${TARGET_MS:-500}      # 250k nodes x 90 days; the issue says 2000 for 1M x 30
TARGET_RSS_MB=${TARGET_RSS_MB:-256}
FLEET_REBUILD=${FLEET_REBUILD:-0} # 1: build the fleet again even if cached

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${VCHECKD_BIN:-$ROOT/target/release/vcheckd}
FLEET_DIR=${FLEET_DIR:-$ROOT/target/bench-fleet}
FLEET=$FLEET_DIR/fleet-${FLEET_CLUSTERS}c-${FLEET_DAYS}d-s$SEED.sqlite
TIME=/usr/bin/time

say() { printf '%s\n' "$*"; }
missing=()
[ -x "$TIME" ] || missing+=("/usr/bin/time (Debian: apt-get install -y time)")
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v sqlite3 >/dev/null 2>&1 || missing+=("sqlite3 (Debian: apt-get install -y sqlite3)")
if [ ${#missing[@]} -gt 0 ]; then
    say "error: stats bench needs ${missing[*]}" >&2
    exit 1
fi
if [ ! -x "$BIN" ]; then
    say "error: $BIN not found: run 'cargo build --release' first (or set VCHECKD_BIN)" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vcheckd-stats.XXXXXX")
SRV_PID=""
cleanup() {
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wall seconds and max RSS (MB) from a /usr/bin/time -v report
wall_of() {
    awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.3f", s }' "$1"
}
rss_of() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }

TODAY=$(( $(date -u +%s) / 86400 ))
open_day() { sqlite3 -batch -noheader "file:$1?mode=ro" "SELECT day FROM open_day" 2>/dev/null || echo 0; }

# --- the fleet -------------------------------------------------------------
if [ -f "$FLEET" ] && [ "$FLEET_REBUILD" != 1 ] && [ "$(open_day "$FLEET")" != "$TODAY" ]; then
    say "cached $FLEET ends on day $(open_day "$FLEET"), not today ($TODAY): the default windows end today, so it is built again"
    FLEET_REBUILD=1
fi
if [ ! -f "$FLEET" ] || [ "$FLEET_REBUILD" = 1 ]; then
    mkdir -p "$FLEET_DIR"
    building=$FLEET.building
    rm -f "$building" "$building-wal" "$building-shm"
    say "building the fleet: vcheckd simulate --db ... --clusters $FLEET_CLUSTERS --days $FLEET_DAYS"
    "$TIME" -v -o "$TMP/simulate.time" "$BIN" simulate --db "$building" \
        --clusters "$FLEET_CLUSTERS" --days "$FLEET_DAYS" --seed "$SEED" | tee "$TMP/simulate.out"
    sqlite3 "$building" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
    rm -f "$building-wal" "$building-shm"
    mv "$building" "$FLEET"
    line="vcheckd simulate --db: $(cat "$TMP/simulate.out"); /usr/bin/time: wall $(wall_of "$TMP/simulate.time") s, max RSS $(rss_of "$TMP/simulate.time") MB; file $(du -m "$FLEET" | cut -f1) MB"
    printf '%s\n' "$line" >"${FLEET%.sqlite}.build.txt"
    say "fleet: built $FLEET"
    say "  $line"
else
    say "fleet: reused $FLEET (built earlier: $(cat "${FLEET%.sqlite}.build.txt" 2>/dev/null || echo 'no record'))"
fi
read -r nodes clusters raw < <(sqlite3 -batch -noheader -separator ' ' "file:$FLEET?mode=ro" \
    "SELECT (SELECT count(*) FROM node_latest), (SELECT count(*) FROM clusters), (SELECT count(*) FROM reports)")
say "fleet: $nodes identified nodes, $clusters clusters, $raw raw reports, $(du -m "$FLEET" | cut -f1) MB"

ROWS=()
row() { ROWS+=("$(printf '%-34s %10s %10s %s' "$1" "$2" "$3" "$4")"); }
verdict() { # ms [rss_mb]
    awk -v ms="$1" -v t="$TARGET_MS" -v rss="${2:-0}" -v tr="$TARGET_RSS_MB" 'BEGIN {
        v = (ms <= t) ? "ok" : sprintf("MISS time x%.2f", ms / t)
        if (rss > tr) v = v sprintf(", MISS rss x%.2f", rss / tr)
        print v }'
}

# --- vcheckd stats ----------------------------------------------------------
say ""
say "== vcheckd stats --db FLEET (default windows), each under /usr/bin/time -v =="
run_stats() { # label args...
    local label=$1 ms rss
    shift
    "$TIME" -v -o "$TMP/t.time" "$BIN" stats --db "$FLEET" "$@" >"$TMP/t.out" 2>"$TMP/t.err" || {
        say "error: vcheckd stats $* failed:" >&2
        cat "$TMP/t.err" >&2
        exit 1
    }
    ms=$(awk -v s="$(wall_of "$TMP/t.time")" 'BEGIN { printf "%.0f", s * 1000 }')
    rss=$(rss_of "$TMP/t.time")
    row "stats $label" "$ms" "$rss" "$(verdict "$ms" "$rss")"
}
run_stats versions versions
run_stats summary summary
run_stats trend trend
run_stats "trend --by week" trend --by week
run_stats "adoption $ADOPTION_VERSION" adoption "$ADOPTION_VERSION"

# --- vcheckd serve --------------------------------------------------------------
# On a copy: the server's processor writes to its database.
say "== vcheckd serve on a copy of the fleet database, HTTP timed with curl =="
cp "$FLEET" "$TMP/fleet.sqlite"
"$BIN" keygen --v1 --out "$TMP/stats.key" >/dev/null 2>&1
cp "$ROOT/zones/vc.example.com.zone" "$TMP/zone.txt"
cat >"$TMP/vcheckd.toml" <<EOF2
[server]
listen = ["127.0.0.1:0"]
database = "fleet.sqlite"
# Raw reports of the whole fleet are kept: no pruning while timing.
retention_days = 3650

[http]
listen = "127.0.0.1:0"

[[zone]]
name = "vc.example.com"
file = "zone.txt"
keys = ["stats.key"]

[zone.releases]
versions = ["1.9.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["1", "2.2"]

[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
EOF2
RUST_LOG=info "$BIN" serve --config "$TMP/vcheckd.toml" --listen 127.0.0.1:0 >"$TMP/serve.log" 2>&1 &
SRV_PID=$!
HTTP=""
for _ in $(seq 300); do
    kill -0 "$SRV_PID" 2>/dev/null || { say "error: vcheckd serve exited:" >&2; tail -20 "$TMP/serve.log" >&2; exit 1; }
    HTTP=$(sed -n 's/.*on http:\/\/\([0-9.:]*\)\/.*/\1/p' "$TMP/serve.log" | head -1)
    [ -n "$HTTP" ] && break
    sleep 0.1
done
[ -n "$HTTP" ] || { say "error: no HTTP address in the server log" >&2; exit 1; }
rss_start=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$SRV_PID/status")
say "server on http://$HTTP/ (pid $SRV_PID), RSS after start $rss_start MB"

curl_ms() { # path -> "ms code bytes"
    curl -s -o "$TMP/body" -w '%{time_total} %{http_code} %{size_download}' "http://$HTTP$1" |
        awk '{ printf "%.0f %s %s\n", $1 * 1000, $2, $3 }'
}
time_get() { # label path
    local ms code bytes
    read -r ms code bytes < <(curl_ms "$2")
    if [ "$code" != 200 ]; then
        say "error: GET $2 answered $code:" >&2
        head -c 500 "$TMP/body" >&2
        exit 1
    fi
    row "GET $1" "$ms" "" "$(verdict "$ms") ($bytes bytes)"
}
# First requests: nothing cached yet (the page and /metrics' fleet gauges
# are cached 30 s per parameters; the API is not cached).
time_get "/api/v1/summary" /api/v1/summary
time_get "/api/v1/versions" /api/v1/versions
time_get "/api/v1/trend" /api/v1/trend
time_get "/api/v1/trend?by=week" "/api/v1/trend?by=week"
time_get "/api/v1/adoption/$ADOPTION_VERSION" "/api/v1/adoption/$ADOPTION_VERSION"
time_get "/ (dashboard, first)" /
time_get "/ (again within 30 s: cached)" /
# The page cache holds one page: other parameters are computed again.
time_get "/?top=9 (other params: uncached)" "/?top=9"
time_get "/metrics (fleet gauges, first)" /metrics
time_get "/api/v1/summary (second)" /api/v1/summary
hwm=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SRV_PID/status")
row "serve peak RSS (VmHWM)" "" "$hwm" "$(awk -v r="$hwm" -v t="$TARGET_RSS_MB" 'BEGIN { print (r <= t) ? "ok" : sprintf("MISS rss x%.2f", r / t) }')"
kill -TERM "$SRV_PID"
wait "$SRV_PID" || true
SRV_PID=""

say ""
say "targets: ${TARGET_MS} ms each, peak RSS ${TARGET_RSS_MB} MB (fleet $FLEET_CLUSTERS clusters x $FLEET_DAYS days, $nodes nodes)"
printf '%-34s %10s %10s %s\n' "what" "ms" "RSS MB" "verdict"
printf '%s\n' "${ROWS[@]}"
