#!/usr/bin/env bash
# Flood bench: random well-shaped v2 names (no effort, free to make) from
# 127.0.0.1 at FLOOD_RATE q/s (or the answer path's maximum: FLOOD_RATE=max)
# while real reports with the suggested effort arrive from 127.0.0.2 at
# HONEST_RATE/s, for DURATION s, against a vcheckd with a small journal
# (JOURNAL_MAX_BYTES, 64 MiB).
# With FLOOD_EFFORT=E the flood's names are instead sealed frames whose
# proofs reach effort E, made by `vcheckd encode --effort E` on this
# machine's cores and timed: the attacker's CPU per frame.
# Prints: real reports sent, answered, stored (lost = answered - stored),
# the intake's decisions by lane and reason, and the server's CPU per frame.
# Loopback only, bounded in time. After `cargo build --release`.
#
# Settings (environment): FLOOD_RATE=20000, HONEST_RATE=200, DURATION=300,
# JOURNAL_MAX_BYTES=67108864, FLOOD_NAMES=1000000 (looped by dnsperf;
# more than the server's repeat memory, so every pass is new to it),
# EFFORT=16 (the zone's suggested effort; real reports reach it),
# FLOOD_EFFORT (unset: random names), HONEST_VERSION=2.4.0, CLIENTS=4,
# KEEP_TMP=0, CACHE (a folder: the key and the name files are kept there and
# reused by later runs with the same settings; making 60,000 real names at
# effort 16 takes minutes of CPU).
# Needs dnsperf, curl, python3 (Debian: apt-get install -y dnsperf curl python3).
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
EFFORT=${EFFORT:-16}
FLOOD_EFFORT=${FLOOD_EFFORT:-}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${VCHECKD_BIN:-$ROOT/target/release/vcheckd}
ZONE=vc.example.com
say() { printf '%s\n' "$*"; }

missing=()
for c in dnsperf curl python3; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "error: the flood bench needs ${missing[*]} (Debian: apt-get install -y dnsperf curl python3)" >&2
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
KEYS=${CACHE:-$TMP}
mkdir -p "$KEYS"
if [ ! -s "$KEYS/flood.private" ]; then
    "$BIN" keygen --private "$KEYS/flood.private" --public "$KEYS/flood.public" >/dev/null 2>&1
fi
cp "$KEYS/flood.private" "$TMP/flood.private"
chmod 600 "$TMP/flood.private"
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
effort = $EFFORT

[zone.releases]
versions = ["2.3.0", "2.4.0", "2.4.1"]
EOF2

HONEST=$((HONEST_RATE * DURATION))
start=$(date +%s)
# make FILE COUNT EFFORT VERSION CLUSTER: COUNT sealed names (TXT lines)
# reaching EFFORT, from the cache when it holds them; the CPU seconds
# `encode` took (user + system, every core) go to FILE.cpu.
make() {
    local file=$1 count=$2 effort=$3 version=$4 cluster=$5
    local cached=${CACHE:+$CACHE/$cluster-$version-$count-e$effort.txt}
    if [ -n "$cached" ] && [ -s "$cached" ] && [ -s "$cached.cpu" ]; then
        cp "$cached" "$file"; cp "$cached.cpu" "$file.cpu"; return
    fi
    /usr/bin/time -f '%U %S' -o "$file.time" "$BIN" encode --zone "$ZONE" --key "$TMP/flood.private" \
        --count "$count" --effort "$effort" --version "$version" --cluster-id "$cluster" \
        --node-id "$cluster-node" | sed 's/$/ TXT/' >"$file"
    awk '{ print $1 + $2 }' "$file.time" >"$file.cpu"
    if [ -n "$cached" ]; then cp "$file" "$cached"; cp "$file.cpu" "$cached.cpu"; fi
}
make "$TMP/honest.txt" "$HONEST" "$EFFORT" "$HONEST_VERSION" honest
if [ -n "$FLOOD_EFFORT" ]; then
    make "$TMP/flood.txt" "$FLOOD_NAMES" "$FLOOD_EFFORT" 2.3.0 flood
    # The same names without the proof: what sealing alone costs.
    make "$TMP/flood0.txt" "$FLOOD_NAMES" 0 2.3.0 flood
    say "flood names: $FLOOD_NAMES sealed with effort $FLOOD_EFFORT in $(cat "$TMP/flood.txt.cpu") CPU s (vcheckd encode --effort $FLOOD_EFFORT; $(cat "$TMP/flood0.txt.cpu") s of it without the proof)"
else
    one=$("$BIN" encode --zone "$ZONE" --key "$TMP/flood.private" --count 1 --version 2.3.0 \
        --cluster-id flood --node-id flood-node)
    # The header (format, key id, epoch) kept: the answer path takes them.
    KEEP=4 python3 "$ROOT/benches/flood/garbage.py" "$one" "$ZONE" "$FLOOD_NAMES" >"$TMP/flood.txt"
fi
say "names: $HONEST real (vcheckd encode --count --effort $EFFORT, $(cat "$TMP/honest.txt.cpu") CPU s), $FLOOD_NAMES flood, in $(( $(date +%s) - start )) s"

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
t1=$(date +%s.%N)

metric() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
family() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep "^$1{" | awk '$2 != 0' | tr '\n' ' '; }
# The opener and the processor catch up (the flood's frames are opened too,
# highest effort first), then the server stops.
# Drained: every frame taken was evicted, opened, skipped as a repeat or
# rejected (the flood's names all pass the shape check, so every rejection
# is the opener's), and the processor has the opened journal.
sum() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | grep "^$1{" | awk '{ s += $2 } END { print s + 0 }'; }
handled() { echo $(( $(metric vcheckd_opener_opened_total) + $(sum vcheckd_reports_rejected_total) )); }
handled1=$(handled)
for _ in $(seq "$CATCHUP_TIMEOUT"); do
    taken=$(( $(sum vcheckd_intake_accepted_total) - $(sum vcheckd_intake_evicted_total) ))
    done_=$(( $(metric vcheckd_opener_opened_total) + $(metric vcheckd_opener_repeats_total) + $(sum vcheckd_reports_rejected_total) ))
    lag=$(metric vcheckd_journal_lag_bytes)
    [ "$done_" -ge "$taken" ] && [ "${lag:-1}" = 0 ] && break
    sleep 1
done
cpu2=$(cpu_ticks)
t2=$(date +%s.%N)
handled2=$(handled)
accepted=$(sum vcheckd_intake_accepted_total)
say "flood:  $(grep -E 'Queries (sent|completed)|Queries per second' "$TMP/flood.out" | tr -s ' ' | tr '\n' ';')"
say "honest: $(grep -E 'Queries (sent|completed)|Queries per second' "$TMP/honest.out" | tr -s ' ' | tr '\n' ';')"
say "intake accepted: $(family vcheckd_intake_accepted_total)"
say "intake evicted:  $(family vcheckd_intake_evicted_total)"
say "intake refused:  $(family vcheckd_intake_refused_total)"
say "intake repeats:  $(metric vcheckd_intake_repeats_total); opened: $(metric vcheckd_opener_opened_total); rejected: $(family vcheckd_reports_rejected_total)"
say "responses: $(family vcheckd_responses_total)"
kill -TERM "$VC_PID"; wait "$VC_PID" || true; VC_PID=""
answered=$(awk '/Queries completed/ { print $3 }' "$TMP/honest.out")
stored=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM reports WHERE version = ?", (sys.argv[2],)).fetchone()[0])' "$TMP/flood.sqlite" "$HONEST_VERSION")
frames=$(grep -E 'Queries completed' "$TMP/flood.out" | awk '{ print $3 }')
say "real reports: $HONEST sent, $answered answered, $stored stored, not stored $((answered - stored)) (lost, or still in the raw lanes if the catch-up timed out: see the last line)"
awk -v a="$cpu0" -v b="$cpu1" -v c="$cpu2" -v t="$TICK" -v n="$frames" -v h="$answered" 'BEGIN {
    printf "server CPU: %.1f s during the flood, %.1f s catching up after; %.1f us per flood frame answered\n",
        (b - a) / t, (c - b) / t, (c - a) / t / (n + h) * 1e6 }'
awk -v n="$((handled2 - handled1))" -v a="$t1" -v b="$t2" -v c1="$cpu1" -v c2="$cpu2" -v t="$TICK" 'BEGIN {
    if (n > 0) printf "opener catch-up: %d frames opened or rejected in %.1f s after the flood (%.0f/s), %.1f us of server CPU each\n",
        n, b - a, n / (b - a), (c2 - c1) / t / n * 1e6 }'
if [ -n "$FLOOD_EFFORT" ]; then
    awk -v cpu="$(cat "$TMP/flood.txt.cpu")" -v cpu0="$(cat "$TMP/flood0.txt.cpu")" -v made="$FLOOD_NAMES" \
        -v acc="$accepted" -v h="$answered" -v a="$cpu0" -v c="$cpu2" -v t="$TICK" 'BEGIN {
        f = acc - h; if (f > made) f = made;
        printf "attacker: %.1f CPU s for %d names (%.0f us each, %.0f us without the proof); %d flood frames accepted: %.0f us of attacker CPU per accepted frame\n",
            cpu, made, cpu / made * 1e6, cpu0 / made * 1e6, f, cpu / f * 1e6;
        printf "server: %.1f CPU s in all for %d frames accepted: %.0f us per frame, every replayed query answered included (the opener catch-up line and cargo bench --bench codec give the cost of a frame alone); attacker/server %.0fx\n",
            (c - a) / t, acc, (c - a) / t / acc * 1e6, (cpu / f) / ((c - a) / t / acc) }'
fi
grep -E "stopped;|lost" "$TMP/server.log" | tail -3 || true
