#!/usr/bin/env bash
# Flood bench: random well-shaped v2 names (no effort, free to make) from
# 127.0.0.1 at FLOOD_RATE q/s (or the answer path's maximum: FLOOD_RATE=max)
# while real reports arrive from 127.0.0.2 at HONEST_RATE/s, for DURATION s,
# against a vcheckd with a small journal (JOURNAL_MAX_BYTES, 64 MiB).
# Prints: real reports sent, answered, stored (lost = answered - stored),
# the intake's decisions by lane and reason, and the server's CPU per frame.
# Loopback only, bounded in time. After `cargo build --release`.
#
# Settings (environment): FLOOD_RATE=20000, HONEST_RATE=200, DURATION=300,
# JOURNAL_MAX_BYTES=67108864, FLOOD_NAMES=1000000 (looped by dnsperf;
# more than the server's repeat memory, so every pass is new to it),
# HONEST_VERSION=2.4.0, CLIENTS=4, KEEP_TMP=0.
# Needs dnsperf, curl, python3, sqlite3 (Debian: apt-get install -y dnsperf curl sqlite3).
set -eEuo pipefail
trap 'echo "error: run.sh line $LINENO failed (exit status $?)" >&2' ERR

FLOOD_RATE=${FLOOD_RATE:-20000}
HONEST_RATE=${HONEST_RATE:-200}
DURATION=${DURATION:-300}
JOURNAL_MAX_BYTES=${JOURNAL_MAX_BYTES:-67108864}
FLOOD_NAMES=${FLOOD_NAMES:-1000000}
HONEST_VERSION=${HONEST_VERSION:-2.4.0}
CLIENTS=${CLIENTS:-4}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-900}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${VCHECKD_BIN:-$ROOT/target/release/vcheckd}
ZONE=vc.example.com
say() { printf '%s\n' "$*"; }

missing=()
for c in dnsperf curl python3 sqlite3; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "error: the flood bench needs ${missing[*]} (Debian: apt-get install -y dnsperf curl python3 sqlite3)" >&2
    exit 1
fi
[ -x "$BIN" ] || { say "error: $BIN not found: run 'cargo build --release' first" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vcheckd-flood.XXXXXX")
VC_PID=""
cleanup() {
    if [ -n "$VC_PID" ] && kill -0 "$VC_PID" 2>/dev/null; then
        kill "$VC_PID" 2>/dev/null || true
        wait "$VC_PID" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$((20000 + RANDOM % 20000))
HTTP_PORT=$((PORT + 1))
"$BIN" keygen --private "$TMP/flood.private" --public "$TMP/flood.public" >/dev/null 2>&1
cp "$ROOT/zones/$ZONE.zone" "$TMP/zone.txt"
cat >"$TMP/vcheckd.toml" <<EOF2
[server]
listen = ["127.0.0.1:$PORT"]
database = "flood.sqlite"
journal_max_bytes = $JOURNAL_MAX_BYTES
# The flood comes from one address: rate limiting off, so that the bench
# measures the journal's priorities, not RRL.
rrl_rate = 0

[http]
listen = "127.0.0.1:$HTTP_PORT"

[[zone]]
name = "$ZONE"
file = "zone.txt"
private_keys = ["flood.private"]
accept_v1 = false

[zone.releases]
versions = ["2.3.0", "2.4.0", "2.4.1"]
EOF2

HONEST=$((HONEST_RATE * DURATION))
start=$(date +%s)
"$BIN" encode --zone "$ZONE" --key "$TMP/flood.public" --count "$HONEST" \
    --version "$HONEST_VERSION" --cluster-id honest --node-id honest-node \
    | sed 's/$/ TXT/' >"$TMP/honest.txt"
one=$("$BIN" encode --zone "$ZONE" --key "$TMP/flood.public" --count 1 --version 2.3.0 \
    --cluster-id flood --node-id flood-node)
python3 "$ROOT/benches/flood/garbage.py" "$one" "$ZONE" "$FLOOD_NAMES" >"$TMP/flood.txt"
say "names: $HONEST real (vcheckd encode --count), $FLOOD_NAMES random well-shaped v2 (garbage.py), in $(( $(date +%s) - start )) s"

(cd "$TMP" && exec "$BIN" serve --config vcheckd.toml) >"$TMP/server.log" 2>&1 &
VC_PID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >/dev/null 2>&1 && break
    kill -0 "$VC_PID" 2>/dev/null || { say "error: vcheckd did not start:"; cat "$TMP/server.log"; exit 1; }
    sleep 0.1
done
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$VC_PID/stat"; }
TICK=$(getconf CLK_TCK)
cpu0=$(cpu_ticks)

rate_flag=()
[ "$FLOOD_RATE" != max ] && rate_flag=(-Q "$FLOOD_RATE")
dnsperf -s 127.0.0.1 -p "$PORT" -a 127.0.0.1 -d "$TMP/flood.txt" -l "$DURATION" \
    -c "$CLIENTS" -q 200 -t 2 "${rate_flag[@]}" >"$TMP/flood.out" 2>&1 &
FLOOD_PID=$!
dnsperf -s 127.0.0.1 -p "$PORT" -a 127.0.0.2 -d "$TMP/honest.txt" -n 1 \
    -Q "$HONEST_RATE" -c 1 -q 20 -t 5 >"$TMP/honest.out" 2>&1
wait "$FLOOD_PID" || true
cpu1=$(cpu_ticks)

metric() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
family() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep "^$1{" | awk '$2 != 0' | tr '\n' ' '; }
# The opener and the processor catch up (the flood's frames are opened too,
# highest effort first), then the server stops.
# Drained: every frame taken was evicted, opened, skipped as a repeat or
# rejected (the flood's names all pass the shape check, so every rejection
# is the opener's), and the processor has the opened journal.
sum() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep "^$1{" | awk '{ s += $2 } END { print s + 0 }'; }
for _ in $(seq "$CATCHUP_TIMEOUT"); do
    taken=$(( $(sum vcheckd_intake_accepted_total) - $(sum vcheckd_intake_evicted_total) ))
    done_=$(( $(metric vcheckd_opener_opened_total) + $(metric vcheckd_opener_repeats_total) + $(sum vcheckd_reports_rejected_total) ))
    lag=$(metric vcheckd_journal_lag_bytes)
    [ "$done_" -ge "$taken" ] && [ "${lag:-1}" = 0 ] && break
    sleep 1
done
cpu2=$(cpu_ticks)
say "flood:  $(grep -E 'Queries (sent|completed)|Queries per second' "$TMP/flood.out" | tr -s ' ' | tr '\n' ';')"
say "honest: $(grep -E 'Queries (sent|completed)|Queries per second' "$TMP/honest.out" | tr -s ' ' | tr '\n' ';')"
say "intake accepted: $(family vcheckd_intake_accepted_total)"
say "intake evicted:  $(family vcheckd_intake_evicted_total)"
say "intake refused:  $(family vcheckd_intake_refused_total)"
say "intake repeats:  $(metric vcheckd_intake_repeats_total); opened: $(metric vcheckd_opener_opened_total); rejected: $(family vcheckd_reports_rejected_total)"
say "responses: $(family vcheckd_responses_total)"
kill -TERM "$VC_PID"; wait "$VC_PID" || true; VC_PID=""
answered=$(awk '/Queries completed/ { print $3 }' "$TMP/honest.out")
stored=$(sqlite3 "$TMP/flood.sqlite" "SELECT COUNT(*) FROM reports WHERE version = '$HONEST_VERSION'")
frames=$(grep -E 'Queries completed' "$TMP/flood.out" | awk '{ print $3 }')
say "real reports: $HONEST sent, $answered answered, $stored stored, not stored $((answered - stored)) (lost, or still in the raw lanes if the catch-up timed out: see the last line)"
awk -v a="$cpu0" -v b="$cpu1" -v c="$cpu2" -v t="$TICK" -v n="$frames" -v h="$answered" 'BEGIN {
    printf "server CPU: %.1f s during the flood, %.1f s catching up after; %.1f us per flood frame answered\n",
        (b - a) / t, (c - b) / t, (c - a) / t / (n + h) * 1e6 }'
grep -E "stopped;|lost" "$TMP/server.log" | tail -3 || true
