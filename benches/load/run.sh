#!/usr/bin/env bash
# Load test: queries per second of a running vcheckd (release build) next to
# NSD serving a static wildcard TXT record, measured with dnsperf in one run,
# alternating the two servers, with DISTINCT payload names (every query is
# a new report, as real clients send them). Traffic goes to 127.0.0.1 only.
#
# PROTOCOL=2: protocol v2 names (sealed to the zone's public key; vcheckd
# answers every one with the zone's signed policy and opens the frames in
# its processor), and NSD serves that same policy TXT as its wildcard.
#
# Usage: benches/load/run.sh [--max-only] [--rate-percent P] [--rate QPS]
#   (default)           max rate, then P% (80) of vcheckd's max rate for DURATION s
#   --max-only          only the max-rate runs
#   --rate-percent P    the sustained run at P% of the max rate measured first
#   --rate QPS          the sustained run at QPS, without the max-rate runs
# After `cargo build --release`. Settings (environment): benches/load/README.md.
#
# Needs dnsperf, nsd and curl; fails with a message naming what is missing.
set -eEuo pipefail
trap 'echo "error: run.sh line $LINENO failed (exit status $?)" >&2' ERR

N=${N:-200000}                # distinct names per max-rate run (each run its own)
DURATION=${DURATION:-60}      # seconds of the sustained run
RATE_PERCENT=${RATE_PERCENT:-80}
ROUNDS=${ROUNDS:-1}           # max-rate rounds: vcheckd, NSD, vcheckd, NSD, ...
SETTLE=${SETTLE:-1}           # seconds of pause after each run
CLIENTS=${CLIENTS:-4}         # dnsperf -c
THREADS=${THREADS:-1}         # dnsperf -T
OUTSTANDING=${OUTSTANDING:-100} # dnsperf -q
TIMEOUT=${TIMEOUT:-2}         # dnsperf -t: seconds before a query counts as lost
EDNS=${EDNS:-1}               # 1: queries carry EDNS0 (dnsperf -e), as resolvers send
VERSION=${VERSION:-2.3.1}     # software version inside every report
NSD_SERVERS=${NSD_SERVERS:-1} # NSD server-count (vcheckd: udp_workers, default one UDP loop per CPU)
JOURNAL_MAX_BYTES=${JOURNAL_MAX_BYTES:-1073741824} # vcheckd [server] journal_max_bytes (its default)
JOURNAL_COMMIT_MS=${JOURNAL_COMMIT_MS:-2}          # vcheckd [server] journal_commit_ms (its default)
MAX_BATCH=${MAX_BATCH:-8192}                       # vcheckd [server] max_batch (its default)
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-600} # seconds to wait for the processor to catch up
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)} # parallel `vcheckd encode --count` processes
PROTOCOL=${PROTOCOL:-1}       # 1 or 2: which protocol the report names speak

MODE=both
while [ $# -gt 0 ]; do
    case "$1" in
        --max-only) MODE=max ;;
        --rate-percent) RATE_PERCENT=${2:?--rate-percent needs a number}; shift ;;
        --rate-percent=*) RATE_PERCENT=${1#*=} ;;
        --rate) FIXED_RATE=${2:?--rate needs queries per second}; MODE=rate; shift ;;
        --rate=*) FIXED_RATE=${1#*=}; MODE=rate ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${VCHECKD_BIN:-$ROOT/target/release/vcheckd}
ZONE=vc.example.com

say() { printf '%s\n' "$*"; }

missing=()
command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ "$PROTOCOL" = 2 ] && { command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils); }
NSD=$(command -v nsd 2>/dev/null || true)
[ -z "$NSD" ] && [ -x /usr/sbin/nsd ] && NSD=/usr/sbin/nsd
[ -z "$NSD" ] && missing+=(nsd)
if [ ${#missing[@]} -gt 0 ]; then
    say "error: load test needs ${missing[*]}, not installed (Debian: apt-get install -y dnsperf nsd curl)" >&2
    exit 1
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
        if [ "$p" != "${1:-}" ] && [ "$p" != "${2:-}" ] && ! port_in_use "$p"; then
            echo "$p"
            return
        fi
    done
    say "error: no free port found" >&2
    exit 1
}

# --- vcheckd: key, zone, config --------------------------------------------
mkdir -p "$TMP/vcheckd" "$TMP/nsd" "$TMP/names"
"$BIN" keygen --v1 --out "$TMP/vcheckd/load.key" >/dev/null 2>&1
"$BIN" keygen --private "$TMP/vcheckd/load.private" --public "$TMP/vcheckd/load.public" >/dev/null 2>&1
# v2 names are sealed with the zone's private key file (encode derives the
# current week's sealing key from it, as a server does), with the effort
# proof of EFFORT bits (0 by default: each bit doubles the time to make them).
if [ "$PROTOCOL" = 2 ]; then CLIENT_KEY=$TMP/vcheckd/load.private; else CLIENT_KEY=$TMP/vcheckd/load.key; fi
cp "$ROOT/zones/$ZONE.zone" "$TMP/vcheckd/zone.txt"
VC_PORT=$(free_port)
NSD_PORT=$(free_port "$VC_PORT")
HTTP_PORT=$(free_port "$VC_PORT" "$NSD_PORT")
cat >"$TMP/vcheckd/vcheckd.toml" <<EOF2
[server]
listen = ["127.0.0.1:$VC_PORT"]
database = "load.sqlite"
journal_max_bytes = $JOURNAL_MAX_BYTES
journal_commit_ms = $JOURNAL_COMMIT_MS
# dnsperf sends from one address: rate limiting off, as rrl-ratelimit 0 for NSD.
rrl_rate = 0
max_batch = $MAX_BATCH

[http]
listen = "127.0.0.1:$HTTP_PORT"

[[zone]]
name = "$ZONE"
file = "zone.txt"
keys = ["load.key"]
private_keys = ["load.private"]
answer_ttl = 60

[zone.releases]
versions = ["1.9.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["1", "2.2"]

[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
EOF2

# --- query files: distinct payload names ---------------------------------------
# make_names FILE COUNT TAG: COUNT new names (JOBS `encode --count` processes,
# each for its own cluster; a fresh nonce per name: each is its own report),
# as dnsperf lines `NAME TXT`.
NAMES_MADE=0
make_names() {
    local file=$1 n=$2 tag=$3 per_job count start secs got pids=() pid
    start=$(date +%s.%N)
    per_job=$(( (n + JOBS - 1) / JOBS ))
    for job in $(seq "$JOBS"); do
        count=$(( n - (job - 1) * per_job ))
        if [ "$count" -gt "$per_job" ]; then count=$per_job; fi
        if [ "$count" -le 0 ]; then continue; fi
        "$BIN" encode --zone "$ZONE" --key "$CLIENT_KEY" --count "$count" --effort "${EFFORT:-0}" \
            --version "$VERSION" --cluster-id "load-$tag-$job" --node-id "load-node-1" \
            >"$file.part$job" &
        pids+=($!)
    done
    # Only the encoders: a bare `wait` would wait for the servers too.
    for pid in "${pids[@]}"; do wait "$pid"; done
    cat "$file".part* >"$file.names"
    rm -f "$file".part*
    got=$(grep -c "\.$ZONE\.\$" "$file.names" || true)
    if [ "$got" != "$n" ]; then
        say "error: expected $n names in $file, got $got" >&2
        exit 1
    fi
    sed 's/$/ TXT/' "$file.names" >"$file"
    rm -f "$file.names"
    NAMES_MADE=$((NAMES_MADE + n))
    secs=$(echo "$start $(date +%s.%N)" | awk '{ printf "%.1f", $2 - $1 }')
    say "query file $(basename "$file"): $n distinct payload names (TXT), made in ${secs}s by $JOBS 'vcheckd encode --count'"
}
printf '%s SOA\n' "$ZONE." >"$TMP/probe.txt"

# --- NSD: the same zone plus a wildcard TXT ----------------------------------
# v1: the hint vcheckd answers for 2.3.1. v2: the signed policy vcheckd
# answers every report with (written once vcheckd runs, below).
HINT_TXT='"v=vc1 status=2 latest=2.4.1 msg=2.4.1 is available"'
nsd_zone() {
    {
        cat "$ROOT/zones/$ZONE.zone"
        printf '*       IN TXT  %s\n' "$HINT_TXT"
    } >"$TMP/nsd/$ZONE.zone"
}
nsd_zone
cat >"$TMP/nsd/nsd.conf" <<EOF2
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
EOF2
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
wait_ready vcheckd "$VC_PORT" "$VC_PID"
if [ "$PROTOCOL" = 2 ]; then
    # The policy TXT in zone-file syntax, as dig prints it.
    HINT_TXT=$(dig +short -p "$VC_PORT" @127.0.0.1 "1._policy.$ZONE." TXT)
    [ -n "$HINT_TXT" ] || { say "error: vcheckd serves no v2 policy" >&2; exit 1; }
    nsd_zone
fi
"$NSD" -d -c "$TMP/nsd/nsd.conf" >"$TMP/nsd.log" 2>&1 &
NSD_PID=$!
wait_ready nsd "$NSD_PORT" "$NSD_PID"
say "vcheckd $("$BIN" --version | awk '{ print $2 }') on 127.0.0.1:$VC_PORT (journal_max_bytes $JOURNAL_MAX_BYTES, journal_commit_ms $JOURNAL_COMMIT_MS, max_batch $MAX_BATCH; /metrics on 127.0.0.1:$HTTP_PORT), NSD $("$NSD" -v 2>&1 | awk 'NR == 1 { print $3 }') on 127.0.0.1:$NSD_PORT (server-count $NSD_SERVERS, rrl-ratelimit 0)"
say "protocol v$PROTOCOL report names; NSD's wildcard TXT is $(printf '%s' "$HINT_TXT" | wc -c) characters of zone-file text"
say "dnsperf -n 1 (each name sent once) -c $CLIENTS -T $THREADS -q $OUTSTANDING -t $TIMEOUT$([ "$EDNS" = 1 ] && echo ' -e'); $(nproc) CPUs shared by servers and dnsperf (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"

# --- measuring helpers ---------------------------------------------------------
# CPU time of a server: user + system ticks of the process and all its
# descendants (NSD forks xfrd -> main -> server processes), and of
# vcheckd's processor thread alone.
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
thread_ticks() { # pid comm (the kernel keeps 15 characters of a thread name)
    local t
    for t in /proc/"$1"/task/*; do
        if [ "$(cat "$t/comm" 2>/dev/null || true)" = "$2" ]; then
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
# metric NAME: a sample without labels from the last /metrics read.
METRICS=""
read_metrics() {
    METRICS=$(curl -sf --max-time 5 "http://127.0.0.1:$HTTP_PORT/metrics") || {
        say "error: cannot read http://127.0.0.1:$HTTP_PORT/metrics" >&2
        exit 1
    }
}
metric() {
    awk -v n="$1" '$1 == n { printf "%.0f", $2; found = 1 } END { if (!found) print 0 }' <<<"$METRICS"
}
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

edns_flag=()
[ "$EDNS" = 1 ] && edns_flag=(-e)

# dnsperf_run NAME PORT PID FILE LABEL [QPS]: one pass over FILE; sets R_*.
dnsperf_run() {
    local name=$1 port=$2 pid=$3 file=$4 label=$5 qps_cap=${6:-} out t0 t1 p0 p1 limit rate_flag=()
    out="$TMP/dnsperf-$name-$label.txt"
    [ -n "$qps_cap" ] && rate_flag=(-Q "$qps_cap")
    limit=$(( $(wc -l <"$file") / 1000 + 60 ))
    [ -n "$qps_cap" ] && limit=$(( $(wc -l <"$file") / qps_cap + 60 ))
    t0=$(proc_ticks "$pid")
    p0=$(thread_ticks "$pid" vcheckd-process)
    timeout $((limit + 30)) dnsperf -s 127.0.0.1 -p "$port" -d "$file" -n 1 -l "$limit" \
        -t "$TIMEOUT" -c "$CLIENTS" -T "$THREADS" -q "$OUTSTANDING" "${edns_flag[@]}" "${rate_flag[@]}" \
        >"$out" 2>&1 || true
    R_END=$(now)
    t1=$(proc_ticks "$pid")
    p1=$(thread_ticks "$pid" vcheckd-process)
    check_alive "$name" "$pid"
    R_QPS=$(awk '/Queries per second:/ { print $4 }' "$out")
    R_SENT=$(awk '/Queries sent:/ { print $3 }' "$out")
    R_DONE=$(awk '/Queries completed:/ { print $3 }' "$out")
    R_LOST=$(awk '/Queries lost:/ { print $3 }' "$out")
    R_SECS=$(awk '/Run time \(s\):/ { print $4 }' "$out")
    R_CODES=$(awk -F': *' '/Response codes:/ { print $2 }' "$out")
    if [ -z "$R_QPS" ] || [ -z "$R_DONE" ] || [ "$R_DONE" = 0 ]; then
        say "error: dnsperf against $name got no answers; its output:" >&2
        cat "$out" >&2
        exit 1
    fi
    R_CPU=$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
    R_US=$(awk -v c="$R_CPU" -v n="$R_DONE" 'BEGIN { printf "%.1f", c * 1e6 / n }')
    R_PROC=""
    if [ "$name" = vcheckd ]; then
        R_PROC=$(awk -v a="$p0" -v b="$p1" -v hz="$CLK_TCK" 'BEGIN { printf ", processor thread %.2f s", (b - a) / hz }')
    fi
    printf '  %-9s %-8s %8.0f q/s answered over %s s  server CPU %s s%s = %s us/query  (sent %s, completed %s, lost %s; %s)\n' \
        "$label" "$name" "$R_QPS" "$R_SECS" "$R_CPU" "$R_PROC" "$R_US" "$R_SENT" "$R_DONE" "$R_LOST" "$R_CODES"
}

# After a vcheckd run: what reached SQLite, from /metrics, as deltas since
# the run started (BASE_* read before it). Polls until the processor caught
# up: lag 0 and either every accepted report accounted for or the stored
# counter still for 2 s.
VC_BASE() {
    read_metrics
    B_ACC=$(metric vcheckd_reports_accepted_total)
    B_STO=$(metric vcheckd_reports_stored_total)
    B_DUP=$(metric vcheckd_reports_duplicate_total)
    B_DRP=$(metric vcheckd_reports_dropped_total)
}
catch_up() { # label
    local t_end=$R_END acc sto dup drp lag lag_end sto_end dup_end last_sto last_move t caught="" rows
    read_metrics
    lag_end=$(metric vcheckd_journal_lag_bytes)
    sto_end=$(metric vcheckd_reports_stored_total)
    dup_end=$(metric vcheckd_reports_duplicate_total)
    last_sto=-1
    last_move=$(now)
    while :; do
        read_metrics
        t=$(now)
        acc=$(( $(metric vcheckd_reports_accepted_total) - B_ACC ))
        sto=$(( $(metric vcheckd_reports_stored_total) - B_STO ))
        dup=$(( $(metric vcheckd_reports_duplicate_total) - B_DUP ))
        drp=$(( $(metric vcheckd_reports_dropped_total) - B_DRP ))
        lag=$(metric vcheckd_journal_lag_bytes)
        if [ "$sto" != "$last_sto" ]; then last_sto=$sto; last_move=$t; fi
        if [ "$lag" = 0 ]; then
            if [ $((sto + dup + drp)) -ge "$acc" ]; then caught=$t; break; fi
            if awk -v a="$t" -v b="$last_move" 'BEGIN { exit !(a - b >= 2) }'; then caught=$last_move; break; fi
        fi
        if awk -v a="$t" -v b="$t_end" -v m="$CATCHUP_TIMEOUT" 'BEGIN { exit !(a - b >= m) }'; then
            say "  warning: processor not caught up $CATCHUP_TIMEOUT s after the load (lag $lag bytes)"
            caught=$t
            break
        fi
        sleep 0.2
    done
    check_alive vcheckd "$VC_PID"
    local secs rate lost unexplained
    secs=$(fsub "$caught" "$t_end")
    awk -v s="$secs" 'BEGIN { exit !(s < 0) }' && secs=0.00
    rate=$(awk -v n="$(( $(metric vcheckd_reports_stored_total) + $(metric vcheckd_reports_duplicate_total) - sto_end - dup_end ))" \
        -v s="$secs" 'BEGIN { if (s > 0.2) printf "%.0f reports/s", n / s; else printf "n/a (nothing left to take in)" }')
    lost=$((acc - sto - dup))
    unexplained=$((lost - drp))
    rows=$(sqlite_rows)
    say "  $1 vcheckd reports: accepted $acc, stored $sto, duplicates $dup, dropped (journal full) $drp; lost $lost (accepted - stored - duplicates: answered, not in the database; $drp of them dropped, $unexplained otherwise)"
    say "  $1 vcheckd processor: journal lag at the end of the load $lag_end bytes; caught up ${secs} s after the load, $rate during catch-up; rows in reports now: $rows"
    C_LOST=$lost C_SECS=$secs C_LAG=$lag_end C_RATE=$rate
}
sqlite_rows() {
    local db="$TMP/vcheckd/load.sqlite"
    if command -v sqlite3 >/dev/null 2>&1; then
        sqlite3 -batch -noheader "file:$db?mode=ro" "SELECT count(*) FROM reports" 2>/dev/null || echo "?"
    else
        echo "? (no sqlite3)"
    fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.1f", s / NR }'; }

# --- max rate ------------------------------------------------------------------
VC_MAX=""
if [ "$MODE" != rate ]; then
    say ""
    say "== max rate: $ROUNDS round(s), $N distinct names per round (vcheckd gets new names each round; NSD the same ones) =="
    VC_QPS=()
    NSD_QPS=()
    for round in $(seq "$ROUNDS"); do
        make_names "$TMP/names/max-$round.txt" "$N" "max$round"
        VC_BASE
        dnsperf_run vcheckd "$VC_PORT" "$VC_PID" "$TMP/names/max-$round.txt" "max#$round"
        VC_QPS+=("$R_QPS")
        catch_up "max#$round"
        sleep "$SETTLE"
        dnsperf_run nsd "$NSD_PORT" "$NSD_PID" "$TMP/names/max-$round.txt" "max#$round"
        NSD_QPS+=("$R_QPS")
        sleep "$SETTLE"
    done
    VC_MAX=$(mean "${VC_QPS[@]}")
    nsd_mean=$(mean "${NSD_QPS[@]}")
    say "max rate: vcheckd ${VC_MAX%.*} q/s, NSD ${nsd_mean%.*} q/s, ratio vcheckd/NSD $(ratio "$VC_MAX" "$nsd_mean") (runs: vcheckd ${VC_QPS[*]%.*}; NSD ${NSD_QPS[*]%.*})"
fi

# --- sustained rate --------------------------------------------------------------
if [ "$MODE" != max ]; then
    if [ "$MODE" = rate ]; then
        RATE=$FIXED_RATE
        why="--rate"
    else
        RATE=$(awk -v m="$VC_MAX" -v p="$RATE_PERCENT" 'BEGIN { printf "%d", m * p / 100 }')
        why="$RATE_PERCENT% of vcheckd's max rate"
    fi
    count=$((RATE * DURATION))
    say ""
    say "== sustained: $RATE q/s ($why) for $DURATION s: $count distinct names =="
    make_names "$TMP/names/sustained.txt" "$count" sustained
    VC_BASE
    dnsperf_run vcheckd "$VC_PORT" "$VC_PID" "$TMP/names/sustained.txt" sustained "$RATE"
    vc_s=$R_QPS vc_lost_q=$R_LOST
    catch_up sustained
    sleep "$SETTLE"
    dnsperf_run nsd "$NSD_PORT" "$NSD_PID" "$TMP/names/sustained.txt" sustained "$RATE"
    say "sustained at $RATE q/s: vcheckd answered ${vc_s%.*} q/s (lost queries $vc_lost_q), NSD ${R_QPS%.*} q/s (lost $R_LOST), ratio vcheckd/NSD $(ratio "$vc_s" "$R_QPS"); reports lost $C_LOST, journal lag at the end $C_LAG bytes, catch-up ${C_SECS} s"
fi

# --- stop ------------------------------------------------------------------------
check_alive nsd "$NSD_PID"
kill -TERM "$VC_PID"
for _ in $(seq 300); do
    kill -0 "$VC_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$VC_PID" 2>/dev/null; then
    say "warning: vcheckd still running 30 s after SIGTERM"
else
    status=0
    wait "$VC_PID" || status=$?
    [ "$status" = 0 ] || say "warning: vcheckd exited with status $status"
    VC_PID=""
fi
say ""
say "names made: $NAMES_MADE; rows in reports after SIGTERM: $(sqlite_rows)"
