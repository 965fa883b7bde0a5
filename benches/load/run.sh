#!/usr/bin/env bash
# Load test: queries per second of a running vcheckd (release build) next to
# NSD serving a static wildcard TXT record, measured with dnsperf in one run,
# alternating the two servers. Traffic goes to 127.0.0.1 only.
#
# Usage: benches/load/run.sh            (after `cargo build --release`)
# Settings (environment): see benches/load/README.md.
#
# Installs nothing: without dnsperf or nsd it says so and exits 0 ("skipped").
set -eEuo pipefail
trap 'echo "error: run.sh line $LINENO failed (exit status $?)" >&2' ERR

N=${N:-20000}                 # distinct payload names in the query file
DURATION=${DURATION:-10}      # seconds per dnsperf run
ROUNDS=${ROUNDS:-2}           # vcheckd, NSD, vcheckd, NSD, ... (ROUNDS pairs)
SETTLE=${SETTLE:-2}           # seconds of pause after each run
CLIENTS=${CLIENTS:-4}         # dnsperf -c
THREADS=${THREADS:-1}         # dnsperf -T
OUTSTANDING=${OUTSTANDING:-100} # dnsperf -q
EDNS=${EDNS:-1}               # 1: queries carry EDNS0 (dnsperf -e), as resolvers send
VERSION=${VERSION:-2.3.1}     # software version inside every report
NSD_SERVERS=${NSD_SERVERS:-1} # NSD server-count (vcheckd: udp_workers, default one UDP loop per CPU)
QUEUE_CAPACITY=${QUEUE_CAPACITY:-65536} # vcheckd [server] queue_capacity (its default)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)} # parallel `vcheckd encode --count` processes

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${VCHECKD_BIN:-$ROOT/target/release/vcheckd}
ZONE=vc.example.com

say() { printf '%s\n' "$*"; }

missing=()
command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
NSD=$(command -v nsd 2>/dev/null || true)
[ -z "$NSD" ] && [ -x /usr/sbin/nsd ] && NSD=/usr/sbin/nsd
[ -z "$NSD" ] && missing+=(nsd)
if [ ${#missing[@]} -gt 0 ]; then
    say "load test skipped: ${missing[*]} not installed (Debian: apt-get install -y dnsperf nsd)"
    say "skipped"
    exit 0
fi
if [ ! -x "$BIN" ]; then
    say "error: $BIN not found: run 'cargo build --release' first (or set VCHECKD_BIN)" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vcheckd-load.XXXXXX")
VC_PID=""
NSD_PID=""
cleanup() {
    local pid
    for pid in "$VC_PID" "$NSD_PID"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port that no local TCP or UDP socket uses (both servers bind both).
port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v h="$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null
}
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 40000))
        if [ "$p" != "${1:-}" ] && ! port_in_use "$p"; then
            echo "$p"
            return
        fi
    done
    say "error: no free port found" >&2
    exit 1
}

# --- vcheckd: key, zone, config --------------------------------------------
mkdir -p "$TMP/vcheckd" "$TMP/nsd"
"$BIN" keygen --out "$TMP/vcheckd/load.key" >/dev/null 2>&1
cp "$ROOT/zones/$ZONE.zone" "$TMP/vcheckd/zone.txt"
VC_PORT=$(free_port)
NSD_PORT=$(free_port "$VC_PORT")
cat >"$TMP/vcheckd/vcheckd.toml" <<EOF
[server]
listen = ["127.0.0.1:$VC_PORT"]
database = "load.sqlite"
queue_capacity = $QUEUE_CAPACITY

[[zone]]
name = "$ZONE"
file = "zone.txt"
keys = ["load.key"]
answer_ttl = 60

[zone.releases]
versions = ["1.9.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["1", "2.2"]

[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
EOF

# --- the query file: N distinct payload names --------------------------------
# JOBS processes, each making its share of the names with `encode --count`
# for its own cluster (a fresh nonce per name: each name is its own report).
start=$(date +%s.%N)
per_job=$(( (N + JOBS - 1) / JOBS ))
for job in $(seq "$JOBS"); do
    count=$(( N - (job - 1) * per_job ))
    if [ "$count" -gt "$per_job" ]; then count=$per_job; fi
    if [ "$count" -le 0 ]; then continue; fi
    "$BIN" encode --zone "$ZONE" --key "$TMP/vcheckd/load.key" --count "$count" \
        --version "$VERSION" --cluster-id "load-cluster-$job" --node-id "load-node-1" &
done >"$TMP/names.txt"
wait
distinct=$(grep -c "\.$ZONE\.\$" "$TMP/names.txt" || true)
if [ "$(sort -u "$TMP/names.txt" | grep -c "\.$ZONE\.\$")" != "$N" ] || [ "$distinct" != "$N" ]; then
    say "error: expected $N distinct names, got $distinct lines ($(sort -u "$TMP/names.txt" | wc -l) distinct)" >&2
    exit 1
fi
sed 's/$/ TXT/' "$TMP/names.txt" >"$TMP/queries.txt"
gen_secs=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
say "query file: $N distinct payload names (TXT), made in ${gen_secs}s by $JOBS 'vcheckd encode --count'"
printf '%s SOA\n' "$ZONE." >"$TMP/probe.txt"

# --- NSD: the same zone plus a wildcard TXT ----------------------------------
HINT_TXT='v=vc1 status=2 latest=2.4.1 msg=2.4.1 is available' # what vcheckd answers for 2.3.1
{
    cat "$ROOT/zones/$ZONE.zone"
    printf '*       IN TXT  "%s"\n' "$HINT_TXT"
} >"$TMP/nsd/$ZONE.zone"
cat >"$TMP/nsd/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$NSD_PORT
    port: $NSD_PORT
    do-ip6: no
    server-count: $NSD_SERVERS
    username: ""
    chroot: ""
    zonesdir: "$TMP/nsd"
    database: ""
    zonelistfile: "$TMP/nsd/zone.list"
    xfrdfile: "$TMP/nsd/xfrd.state"
    xfrdir: "$TMP/nsd"
    pidfile: "$TMP/nsd/nsd.pid"
    logfile: "$TMP/nsd/nsd.log"
    verbosity: 0
    rrl-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "$ZONE"
    zonefile: "$ZONE.zone"
EOF
CHECKCONF=$(command -v nsd-checkconf 2>/dev/null || echo "$(dirname "$NSD")/nsd-checkconf")
if [ -x "$CHECKCONF" ] && ! "$CHECKCONF" "$TMP/nsd/nsd.conf" >"$TMP/nsd/checkconf.log" 2>&1; then
    say "error: NSD rejects its configuration:" >&2
    cat "$TMP/nsd/checkconf.log" >&2
    exit 1
fi

# --- start both servers ------------------------------------------------------
wait_ready() { # name port pid
    for _ in $(seq 50); do
        if ! kill -0 "$3" 2>/dev/null; then
            say "error: $1 exited at start; its log:" >&2
            cat "$TMP/$1.log" "$TMP/nsd/nsd.log" 2>/dev/null | tail -20 >&2
            exit 1
        fi
        if dnsperf -s 127.0.0.1 -p "$2" -d "$TMP/probe.txt" -n 1 -t 1 2>/dev/null |
            grep -q 'Queries completed: *1 '; then
            return
        fi
        sleep 0.2
    done
    say "error: $1 does not answer on 127.0.0.1:$2" >&2
    exit 1
}
RUST_LOG=warn "$BIN" serve --config "$TMP/vcheckd/vcheckd.toml" >"$TMP/vcheckd.log" 2>&1 &
VC_PID=$!
"$NSD" -d -c "$TMP/nsd/nsd.conf" >"$TMP/nsd.log" 2>&1 &
NSD_PID=$!
wait_ready vcheckd "$VC_PORT" "$VC_PID"
wait_ready nsd "$NSD_PORT" "$NSD_PID"
say "vcheckd $("$BIN" --version | awk '{ print $2 }') on 127.0.0.1:$VC_PORT (queue_capacity $QUEUE_CAPACITY), NSD $("$NSD" -v 2>&1 | awk 'NR == 1 { print $3 }') on 127.0.0.1:$NSD_PORT (server-count $NSD_SERVERS, rrl-ratelimit 0)"
say "dnsperf: $DURATION s per run, -c $CLIENTS -T $THREADS -q $OUTSTANDING$([ "$EDNS" = 1 ] && echo ' -e'), $ROUNDS rounds, $(nproc) CPUs shared by servers and dnsperf (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"

# --- measure -----------------------------------------------------------------
# CPU time of a server: user + system ticks of the process and all its
# descendants (NSD forks xfrd -> main -> server processes), and of
# vcheckd's writer thread alone.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_ticks() { # pid
    # Processes come and go while this reads: a vanished one is no error.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/^\([0-9]*\) (.*) /\1 /' |
        awk -v r="$1" '{ ppid[$1] = $3; ticks[$1] = $13 + $14 }
            END {
                for (p in ticks) {
                    q = p
                    for (depth = 0; depth < 16 && q != "" && q != r && q != 0; depth++) q = ppid[q]
                    if (q == r) s += ticks[p]
                }
                print s + 0
            }'
}
writer_ticks() { # pid
    local t
    for t in /proc/"$1"/task/*; do
        if [ "$(cat "$t/comm" 2>/dev/null || true)" = vcheckd-writer ]; then
            { sed 's/^.*) //' "$t/stat" 2>/dev/null || true; } | awk '{ print $12 + $13 } END { if (NR == 0) print 0 }'
            return
        fi
    done
    echo 0
}
check_alive() { # name pid
    if ! kill -0 "$2" 2>/dev/null; then
        local status=0
        wait "$2" || status=$?
        say "error: $1 exited during the run (exit status $status); its log:" >&2
        tail -20 "$TMP/$1.log" >&2
        exit 1
    fi
}
edns_flag=()
[ "$EDNS" = 1 ] && edns_flag=(-e)
VC_QPS=()
NSD_QPS=()
VC_CPU=()
NSD_CPU=()
VC_SENT=0
VC_DONE=0
run_one() { # name port round pid
    local out="$TMP/dnsperf-$1-$3.txt" t0 w0 t1 w1
    t0=$(proc_ticks "$4")
    w0=$(writer_ticks "$4")
    timeout $((DURATION + 30)) dnsperf -s 127.0.0.1 -p "$2" -d "$TMP/queries.txt" \
        -l "$DURATION" -c "$CLIENTS" -T "$THREADS" -q "$OUTSTANDING" "${edns_flag[@]}" >"$out" 2>&1 || true
    t1=$(proc_ticks "$4")
    w1=$(writer_ticks "$4")
    check_alive "$1" "$4"
    local qps sent completed lost codes cpu us writer=""
    qps=$(awk '/Queries per second:/ { print $4 }' "$out")
    sent=$(awk '/Queries sent:/ { print $3 }' "$out")
    completed=$(awk '/Queries completed:/ { print $3 }' "$out")
    lost=$(awk '/Queries lost:/ { print $3 }' "$out")
    codes=$(awk -F': *' '/Response codes:/ { print $2 }' "$out")
    if [ -z "$qps" ] || [ -z "$completed" ] || [ "$completed" = 0 ]; then
        say "error: dnsperf against $1 got no answers; its output:" >&2
        cat "$out" >&2
        exit 1
    fi
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
    us=$(awk -v c="$cpu" -v n="$completed" 'BEGIN { printf "%.1f", c * 1e6 / n }')
    if [ "$1" = vcheckd ]; then
        writer=$(awk -v a="$w0" -v b="$w1" -v hz="$CLK_TCK" 'BEGIN { printf ", writer thread %.2f s", (b - a) / hz }')
    fi
    printf '  round %s  %-8s %8.0f q/s  server CPU %s s%s = %s us/query  (sent %s, completed %s, lost %s; %s)\n' \
        "$3" "$1" "$qps" "$cpu" "$writer" "$us" "$sent" "$completed" "$lost" "$codes"
    RESULT_QPS=$qps RESULT_SENT=$sent RESULT_DONE=$completed RESULT_US=$us
    sleep "$SETTLE"
}
for round in $(seq "$ROUNDS"); do
    run_one vcheckd "$VC_PORT" "$round" "$VC_PID"
    VC_QPS+=("$RESULT_QPS")
    VC_CPU+=("$RESULT_US")
    VC_SENT=$((VC_SENT + RESULT_SENT))
    VC_DONE=$((VC_DONE + RESULT_DONE))
    run_one nsd "$NSD_PORT" "$round" "$NSD_PID"
    NSD_QPS+=("$RESULT_QPS")
    NSD_CPU+=("$RESULT_US")
done

mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.1f", s / NR }'; }
vc_mean=$(mean "${VC_QPS[@]}")
nsd_mean=$(mean "${NSD_QPS[@]}")
ratio=$(awk -v a="$vc_mean" -v b="$nsd_mean" 'BEGIN { printf "%.3f", a / b }')
say ""
say "vcheckd: ${vc_mean%.*} q/s, $(mean "${VC_CPU[@]}") us CPU/query (runs: ${VC_QPS[*]%.*})"
say "NSD:     ${nsd_mean%.*} q/s, $(mean "${NSD_CPU[@]}") us CPU/query (runs: ${NSD_QPS[*]%.*})"
say "ratio vcheckd/NSD: $ratio"

# --- what reached SQLite -------------------------------------------------------
# SIGTERM makes vcheckd drain its queue, commit and persist its counters.
check_alive vcheckd "$VC_PID"
check_alive nsd "$NSD_PID"
kill -TERM "$VC_PID"
for _ in $(seq 300); do
    kill -0 "$VC_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$VC_PID" 2>/dev/null; then
    say "warning: vcheckd still draining after 30 s; figures below may be partial"
else
    wait "$VC_PID" || say "warning: vcheckd exited with status $?"
    VC_PID=""
fi
DB="$TMP/vcheckd/load.sqlite"
sql() {
    if command -v sqlite3 >/dev/null 2>&1; then
        sqlite3 -batch -noheader -separator ' ' "$DB" "$1"
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):
    print(" ".join(str(v) for v in row))' "$DB" "$1"
    else
        return 1
    fi
}
if rows=$(sql "SELECT count(*), coalesce(sum(duplicates), 0) FROM reports"); then
    read -r nrows ndup <<<"$rows"
    counter() { sql "SELECT coalesce(sum(value), 0) FROM counters WHERE name = '$1'"; }
    accepted=$(counter reports.accepted)
    dropped=$(counter reports.queue_dropped)
    stored=$(counter reports.stored)
    duplicate=$(counter reports.duplicate)
    udp=$(counter queries.udp)
    say ""
    say "SQLite ($DB):"
    say "  queries sent to vcheckd by dnsperf: $VC_SENT (completed $VC_DONE), server counted queries.udp $udp (incl. readiness probes)"
    say "  reports.accepted $accepted = stored $stored + duplicate $duplicate + queue_dropped $dropped"
    say "  rows in reports: $nrows distinct reports (of $N distinct names), sum(duplicates) $ndup"
    awk -v d="$dropped" -v a="$accepted" 'BEGIN { if (a > 0) printf "  dropped by the full queue: %.1f%% of accepted reports\n", 100 * d / a }'
else
    say "(neither sqlite3 nor python3: cannot read $DB)"
fi
