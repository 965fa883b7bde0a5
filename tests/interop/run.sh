#!/usr/bin/env bash
# Functions called only from traps or through arrays look unreachable:
# shellcheck disable=SC2317
# vcheckd behind real resolvers (issue 5), and its answers to the DNS
# compliance probes of RFC 8906 and BIND's EDNS tests.
#
#   tests/interop/run.sh PATH/TO/vcheckd
#
# Builds a small DNS world on one 127.53.N.0/24 block of the loopback
# network (N random, so that two runs do not collide):
#
#   .10  NSD, the root zone "."           (delegates example.com)
#   .11  NSD, the parent zone example.com (delegates vc.example.com: NS + glue)
#   .20  vcheckd, the telemetry zone vc.example.com
#   .31  Unbound (QNAME minimisation on, use-caps-for-id on)
#   .32  Knot Resolver (kresd)
#   .33  PowerDNS Recursor
#   .34  Unbound with tcp-upstream: yes    (every upstream query over TCP)
#   .35  Knot Resolver with the TCP flag   (every upstream query over TCP)
#
# The resolvers know only the test root (root hints); nothing leaves
# 127.0.0.0/8. Every process started here is stopped on exit (trap), and
# every query has a timeout.
#
# Output: one line per case, "PASS <group> <case>", "FAIL <group> <case>:
# <why>" (followed by the evidence, indented), "SKIP <group>: <why>", then
# "SUMMARY ...". Exit status: 0 when no case failed, 1 when one did, 77 when
# nothing could run (not root, port 53 not bindable, dig or python3 or the
# vcheckd binary missing).
#
# It installs nothing. A missing nsd, unbound, kresd, pdns_recursor or kdig
# skips its groups with a message; .ci/run installs them:
#   apt-get install nsd unbound knot-resolver pdns-recursor knot-dnsutils bind9-dnsutils
#
# Environment:
#   VCHECKD_INTEROP_REQUIRE=1  a skipped group is a failure (for CI)
#   VCHECKD_INTEROP_ONLY="direct kdig unbound kresd pdns unbound-tcp kresd-tcp"
#                              run only these groups
#   VCHECKD_INTEROP_KEEP=1     keep the work folder (configs, logs, database)
#                              even when everything passed

set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TEMPLATES=$HERE/templates
VCHECKD=${1:-}
ZONE=vc.example.com
REQUIRE=${VCHECKD_INTEROP_REQUIRE:-0}
ONLY=${VCHECKD_INTEROP_ONLY:-}
KEEP=${VCHECKD_INTEROP_KEEP:-0}
START_TIME=$(date +%s)

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()

say() { printf '%s\n' "$*"; }
pass() {
    PASSED=$((PASSED + 1))
    say "PASS $1 $2"
}
# fail GROUP CASE WHY [EVIDENCE]
fail() {
    FAILED=$((FAILED + 1))
    FAILURES+=("$1 $2")
    say "FAIL $1 $2: $3"
    if [[ -n ${4:-} ]]; then
        printf '%s\n' "$4" | head -n 40 | sed 's/^/    | /'
    fi
}
skip() {
    SKIPPED=$((SKIPPED + 1))
    say "SKIP $1: $2"
}
wanted() { [[ -z $ONLY || " $ONLY " == *" $1 "* ]]; }
have() { command -v "$1" >/dev/null 2>&1; }

summary() {
    local took=$(($(date +%s) - START_TIME))
    say "SUMMARY passed=$PASSED failed=$FAILED skipped=$SKIPPED seconds=$took"
    if ((FAILED > 0)); then
        say "FAILED CASES: ${FAILURES[*]/%/,}"
    fi
}

# ---------------------------------------------------------------- pre-flight

if [[ -z $VCHECKD || ! -x $VCHECKD ]]; then
    say "SKIP all: no vcheckd binary given (usage: $0 PATH/TO/vcheckd)"
    exit 77
fi
VCHECKD=$(cd "$(dirname "$VCHECKD")" && pwd)/$(basename "$VCHECKD")
for tool in dig python3 timeout; do
    if ! have "$tool"; then
        say "SKIP all: $tool is not installed (dig: apt-get install bind9-dnsutils)"
        ((REQUIRE)) && exit 1
        exit 77
    fi
done

# Picks a free 127.53.N.0/24 block: every address the suite listens on must
# be bindable on port 53, UDP and TCP (root, or CAP_NET_BIND_SERVICE).
probe_block() {
    python3 - "$@" <<'EOF'
import errno, socket, sys
net = sys.argv[1]
socks = []
try:
    for host in (10, 11, 20, 31, 32, 33, 34, 35):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            socks.append(s)
            s.bind((f"{net}.{host}", 53))
except OSError as e:
    if e.errno == errno.EADDRINUSE:
        print("busy")
    else:
        print(f"error: cannot bind {net}.{host}:53: {e.strerror}")
    sys.exit(0)
finally:
    for s in socks:
        s.close()
print("ok")
EOF
}
NET=""
for _ in 1 2 3 4 5 6 7 8; do
    candidate=127.53.$((RANDOM % 250 + 1))
    verdict=$(probe_block "$candidate")
    case $verdict in
    ok)
        NET=$candidate
        break
        ;;
    busy) continue ;;
    *)
        say "SKIP all: $verdict (run as root, or give the shell CAP_NET_BIND_SERVICE)"
        ((REQUIRE)) && exit 1
        exit 77
        ;;
    esac
done
if [[ -z $NET ]]; then
    say "SKIP all: no free 127.53.N.0/24 block with port 53 unused"
    ((REQUIRE)) && exit 1
    exit 77
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vcheckd-interop.XXXXXX")
chmod 755 "$WORK"
say "# network $NET.0/24, work folder $WORK"

# ------------------------------------------------------------ process control

PIDS=()
declare -A PID_NAME=()

# start NAME COMMAND...: runs COMMAND in the background, output to NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    PID_NAME[$pid]=$name
    eval "PID_OF_${name//-/_}=$pid"
}

# stop PID...: SIGTERM, then SIGKILL after 5 seconds.
stop_pids() {
    local pid
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null
    done
    local deadline=$((SECONDS + 5))
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "# ${PID_NAME[$pid]:-$pid} did not stop on SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
}

stop_named() {
    local var="PID_OF_${1//-/_}"
    local pid=${!var:-}
    [[ -n $pid ]] || return 0
    stop_pids "$pid"
    local keep=()
    local p
    for p in "${PIDS[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#PIDS[@]} > 0)); then
        stop_pids "${PIDS[@]}"
    fi
    if ((FAILED == 0 && KEEP == 0)); then
        rm -rf "$WORK"
    else
        say "# kept $WORK (configs, logs, database)"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'say "# interrupted"; FAILED=$((FAILED + 1)); exit 1' INT TERM

alive() {
    local var="PID_OF_${1//-/_}"
    local pid=${!var:-}
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

log_tail() { tail -n 15 "$WORK/$1.log" 2>/dev/null; }

# ----------------------------------------------------------------- rendering

LONG_ID="INTEROP-TC-$(printf 'long-advisory-text-%04d-' $(seq 1 60) | tr -d '\n')"

# render TEMPLATE OUT [KEY=VALUE...]
render() {
    local in=$TEMPLATES/$1 out=$WORK/$2
    shift 2
    local script="s|@NET@|$NET|g; s|@DIR@|$WORK|g; s|@LONG_ID@|$LONG_ID|g"
    local kv
    for kv in "$@"; do
        script+="; s|@${kv%%=*}@|${kv#*=}|g"
    done
    sed -e "$script" "$in" >"$out"
}

render root.zone root.zone
render example.com.zone example.com.zone
render vc.example.com.zone vc.example.com.zone
render v2.example.com.zone v2.example.com.zone
render root.hints root.hints
render vcheckd.toml vcheckd.toml

# ---------------------------------------------------------------- DNS helpers

VC=$NET.20

# q SERVER ARGS...: dig at SERVER, one try, bounded.
q() {
    local server=$1
    shift
    timeout 20 dig "@$server" +time=4 +tries=1 "$@" 2>&1
}
# kq SERVER ARGS...: kdig at SERVER, one try, bounded.
kq() {
    local server=$1
    shift
    timeout 20 kdig "@$server" +timeout=4 +retry=0 "$@" 2>&1
}

# Fields of a dig or kdig answer (the two print them slightly differently).
f_status() { grep -m1 -oE 'status: [A-Z0-9]+' <<<"$1" | cut -d' ' -f2; }
f_flags() { grep -m1 -iE '^;; flags:' <<<"$1" | sed -E 's/^;; [Ff]lags: *([^;]*);.*/\1/'; }
f_count() { grep -m1 -oE "$2: [0-9]+" <<<"$1" | cut -d' ' -f2; }

# expect GROUP CASE OUTPUT SPEC...: checks a dig/kdig output. SPEC items:
#   status=RCODE  flag:F  noflag:F  answer=N  answer>=N  authority=N
#   query=N  re:REGEX (must match a line)  nore:REGEX (must match none)
expect() {
    local group=$1 name=$2 out=$3
    shift 3
    local why="" s key want got flags
    flags=" $(f_flags "$out") "
    for s in "$@"; do
        case $s in
        status=*)
            got=$(f_status "$out")
            [[ $got == "${s#status=}" ]] || why+="; status ${got:-none}, expected ${s#status=}"
            ;;
        flag:*)
            [[ $flags == *" ${s#flag:} "* ]] || why+="; flag ${s#flag:} not set (flags:$flags)"
            ;;
        noflag:*)
            [[ $flags != *" ${s#noflag:} "* ]] || why+="; flag ${s#noflag:} set (flags:$flags)"
            ;;
        *'>='*)
            key=${s%%>=*}
            want=${s#*>=}
            got=$(f_count "$out" "${key^^}")
            [[ -n $got ]] && ((got >= want)) || why+="; $key count ${got:-none}, expected >= $want"
            ;;
        answer=* | authority=* | query=* | additional=*)
            key=${s%%=*}
            want=${s#*=}
            got=$(f_count "$out" "${key^^}")
            [[ $got == "$want" ]] || why+="; $key count ${got:-none}, expected $want"
            ;;
        re:*)
            grep -qE -- "${s#re:}" <<<"$out" || why+="; no line matches /${s#re:}/"
            ;;
        nore:*)
            if grep -qE -- "${s#nore:}" <<<"$out"; then
                why+="; a line matches /${s#nore:}/: $(grep -m1 -E -- "${s#nore:}" <<<"$out")"
            fi
            ;;
        *)
            why+="; bad spec item $s"
            ;;
        esac
    done
    if [[ -z $why ]]; then
        pass "$group" "$name"
    else
        fail "$group" "$name" "${why#; }" "$out"
    fi
}

# ------------------------------------------------------------- vcheckd helpers

vc() { timeout 30 "$VCHECKD" "$@"; }

# encode VERSION CLUSTER: prints "NAME REPORT_ID" for a fresh report.
encode() {
    vc encode --zone "$ZONE" --key "$WORK/vc.example.com.key" \
        --cluster-id "$2" --node-id node-1 --version "$1" --json |
        python3 -c 'import json,sys; v=json.load(sys.stdin); print(v["query_name"], v["report_id"])'
}

# db report RID | db total | db counter PREFIX
db() {
    python3 - "$WORK/vcheckd.sqlite" "$@" <<'EOF'
import sqlite3, sys
path, what = sys.argv[1], sys.argv[2]
try:
    conn = sqlite3.connect(path, timeout=5)
    if what == "report":
        rows = conn.execute(
            "SELECT duplicates, version, status FROM reports WHERE report_id = ?",
            (bytes.fromhex(sys.argv[3]),)).fetchall()
        if rows:
            print(len(rows), *rows[0])
        else:
            print(0, "-", "-", "-")
    elif what == "total":
        print(conn.execute("SELECT count(*) FROM reports").fetchone()[0])
    elif what == "counter":
        print(conn.execute(
            "SELECT coalesce(sum(value), 0) FROM counters WHERE name LIKE ?",
            (sys.argv[3] + "%",)).fetchone()[0])
except sqlite3.Error as e:
    # No table yet (server not started) reads as nothing recorded.
    print({"report": "0 - - -"}.get(what, "0"), file=sys.stdout)
    print(f"db: {e}", file=sys.stderr)
EOF
}

# wait_report RID N SECONDS: until the report has N rows; prints the row.
wait_report() {
    local deadline=$((SECONDS + $3)) row
    while :; do
        row=$(db report "$1" 2>/dev/null)
        if [[ ${row%% *} == "$2" ]] || ((SECONDS >= deadline)); then
            say "$row"
            return
        fi
        sleep 0.2
    done
}

# wait_counter PREFIX ABOVE SECONDS: until the counter sum exceeds ABOVE.
# Counters are persisted after a second without reports, so this takes 1-2 s.
wait_counter() {
    local deadline=$((SECONDS + $3)) v
    while :; do
        v=$(db counter "$1" 2>/dev/null)
        if ((v > $2)) || ((SECONDS >= deadline)); then
            say "$v"
            return
        fi
        sleep 0.25
    done
}

# settle: long enough for the server's counter flush (1 s idle) to happen.
settle() { sleep 2.5; }

json_field() { python3 -c 'import json,sys
try: print(json.loads(sys.stdin.read())[sys.argv[1]])
except Exception: print("")' "$1"; }

# --------------------------------------------------------------- vcheckd up

vc keygen --v1 --id 9 --out "$WORK/vc.example.com.key" >/dev/null 2>&1 ||
    say "# keygen --v1 failed"
vc keygen --id 4 --private "$WORK/vc.example.com.v2.private" \
    --public "$WORK/vc.example.com.v2.public" >/dev/null 2>&1 || say "# keygen failed"
vc keygen --id 5 --private "$WORK/v2.example.com.v2.private" \
    --public "$WORK/v2.example.com.v2.public" >/dev/null 2>&1 || say "# keygen failed"
start vcheckd env RUST_LOG=info NO_COLOR=1 "$VCHECKD" serve --config "$WORK/vcheckd.toml"

# wait_up NAME ADDR QNAME SECONDS: until ADDR answers QNAME SOA with NOERROR.
wait_up() {
    local name=$1 addr=$2 qname=$3 deadline=$((SECONDS + $4)) out
    while ((SECONDS < deadline)); do
        if ! alive "$name"; then
            say "# $name exited"
            return 1
        fi
        out=$(timeout 5 dig "@$addr" +time=1 +tries=1 "$qname" SOA 2>&1)
        [[ $(f_status "$out") == NOERROR ]] && return 0
        sleep 0.2
    done
    return 1
}

if ! wait_up vcheckd "$VC" "$ZONE" 20; then
    fail vcheckd start "vcheckd did not answer on $VC:53" "$(log_tail vcheckd)"
    summary
    exit 1
fi
pass vcheckd start

# ------------------------------------------ direct: dig, RFC 8906 and BIND EDNS

# The names the direct cases use: reports, and a partial name as a
# QNAME-minimising resolver sends it (only the last payload label).
read -r R1_NAME R1_ID < <(encode 2.3.1 direct-dig)
read -r RL_NAME RL_ID < <(encode 2.0.0 direct-dig)
R1_LABELS=${R1_NAME%".$ZONE."}
R1_PARTIAL_1=${R1_LABELS##*.}.$ZONE.
R1_PARTIAL_2=$(rev <<<"$R1_LABELS" | cut -d. -f1-2 | rev).$ZONE.
HINT_231='"v=vc1 status=2 latest=2.4.1 msg=2.4.1 is available"'
SOA_RE="^$ZONE\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+SOA[[:space:]]"

direct_dig() {
    local g=direct D=(q "$VC" +norec)
    local out

    # RFC 8906 section 8.1: plain DNS.
    out=$("${D[@]}" +noedns "$ZONE" SOA)
    expect $g rfc8906-soa "$out" status=NOERROR flag:aa answer=1 "re:$SOA_RE" nore:'^; EDNS'
    out=$("${D[@]}" +noedns "$ZONE" NS)
    expect $g rfc8906-ns "$out" status=NOERROR flag:aa answer=1 "re:IN[[:space:]]+NS[[:space:]]+ns1\.$ZONE\."
    out=$("${D[@]}" +noedns "$ZONE" TYPE1000)
    expect $g rfc8906-unknown-type "$out" status=NOERROR flag:aa answer=0 authority=1 "re:$SOA_RE"
    out=$("${D[@]}" +noedns +cd "$ZONE" SOA)
    expect $g rfc8906-cd "$out" status=NOERROR flag:aa answer=1
    out=$("${D[@]}" +noedns +adflag "$ZONE" SOA)
    expect $g rfc8906-ad "$out" status=NOERROR flag:aa answer=1 noflag:ad
    out=$("${D[@]}" +noedns +zflag "$ZONE" SOA)
    expect $g rfc8906-zflag "$out" status=NOERROR flag:aa answer=1 'nore:^;; flags:.*MBZ'
    out=$("${D[@]}" +noedns +opcode=15 "$ZONE" SOA)
    expect $g rfc8906-opcode15-notimp "$out" status=NOTIMP noflag:aa answer=0
    out=$("${D[@]}" +noedns +tcp "$ZONE" SOA)
    expect $g rfc8906-tcp "$out" status=NOERROR flag:aa answer=1

    # RFC 8906 section 8.2 and BIND's EDNS compliance cases.
    out=$("${D[@]}" +edns=0 +nocookie "$ZONE" SOA)
    expect $g edns0 "$out" status=NOERROR flag:aa answer=1 're:^; EDNS: version: 0,'
    out=$("${D[@]}" +edns=1 +noednsneg +nocookie "$ZONE" SOA)
    expect $g edns1-badvers "$out" status=BADVERS answer=0 're:^; EDNS: version: 0,'
    out=$("${D[@]}" +edns=0 +nocookie +ednsopt=100 "$ZONE" SOA)
    expect $g ednsopt-unknown-ignored "$out" status=NOERROR flag:aa answer=1 \
        're:^; EDNS: version: 0,' 'nore:OPT=100'
    out=$("${D[@]}" +edns=1 +noednsneg +nocookie +ednsopt=100 "$ZONE" SOA)
    expect $g edns1-ednsopt-badvers "$out" status=BADVERS answer=0 \
        're:^; EDNS: version: 0,' 'nore:OPT=100'
    out=$("${D[@]}" +edns=0 +nocookie +ednsflags=0x80 "$ZONE" SOA)
    expect $g ednsflags-unknown-ignored "$out" status=NOERROR flag:aa answer=1 \
        're:^; EDNS: version: 0,' 'nore:^; EDNS:.*MBZ'
    out=$("${D[@]}" +edns=1 +noednsneg +nocookie +ednsflags=0x80 "$ZONE" SOA)
    expect $g edns1-ednsflags-badvers "$out" status=BADVERS answer=0 'nore:^; EDNS:.*MBZ'
    out=$("${D[@]}" +dnssec +nocookie "$ZONE" SOA)
    expect $g edns-do "$out" status=NOERROR flag:aa answer=1 're:^; EDNS: version: 0, flags: do;'
    out=$("${D[@]}" +edns=1 +noednsneg +dnssec +nocookie "$ZONE" SOA)
    expect $g edns1-do-badvers "$out" status=BADVERS answer=0
    out=$("${D[@]}" +edns=0 +nsid +expire +cookie +subnet=192.0.2.0/24 "$ZONE" SOA)
    expect $g edns-optlist "$out" status=NOERROR flag:aa answer=1 're:^; EDNS: version: 0,' \
        'nore:^; (NSID|EXPIRE|CLIENT-SUBNET):'
    out=$("${D[@]}" +edns=0 +nocookie +tcp "$ZONE" SOA)
    expect $g edns-tcp "$out" status=NOERROR flag:aa answer=1 're:^; EDNS: version: 0,'
    out=$("${D[@]}" +edns=0 +nocookie +bufsize=512 "$ZONE" SOA)
    expect $g edns-bufsize512 "$out" status=NOERROR flag:aa answer=1
    out=$("${D[@]}" +noedns +header-only)
    expect $g no-question-formerr "$out" status=FORMERR
    out=$("${D[@]}" +noedns +rec "$ZONE" SOA)
    expect $g rd-copied-no-ra "$out" status=NOERROR flag:rd noflag:ra flag:aa

    # ANY (RFC 8482): answered, never refused; at the apex vcheckd gives
    # the zone file's records, for a report the hint.
    out=$("${D[@]}" +noedns "$ZONE" ANY)
    expect $g any-apex-rfc8482 "$out" status=NOERROR flag:aa 'answer>=1'
    out=$("${D[@]}" +edns=0 +nocookie "$R1_NAME" ANY)
    expect $g any-report-rfc8482 "$out" status=NOERROR flag:aa answer=1 "re:TXT[[:space:]]+$HINT_231"

    # Classes other than IN: REFUSED, with the question echoed; ANY is
    # answered from IN without AA, NONE refused without the question (as
    # NSD 4.6: docs/DNS.md).
    out=$("${D[@]}" +noedns version.bind TXT CH)
    expect $g class-ch-version.bind "$out" status=REFUSED query=1 answer=0
    out=$("${D[@]}" +noedns "$ZONE" SOA CH)
    expect $g class-ch-zone "$out" status=REFUSED query=1 answer=0
    out=$("${D[@]}" +noedns "$ZONE" SOA -c ANY)
    expect $g class-any "$out" status=NOERROR noflag:aa query=1 answer=1
    out=$("${D[@]}" +noedns "$ZONE" SOA -c CLASS254)
    expect $g class-none "$out" status=REFUSED query=0 answer=0
    out=$("${D[@]}" +noedns example.org SOA)
    expect $g outside-zone-refused "$out" status=REFUSED noflag:aa answer=0
    out=$(q "$VC" +tcp "$ZONE" AXFR)
    expect $g axfr-refused "$out" 're:(REFUSED|Transfer failed)' "nore:$SOA_RE"

    # The hint itself, UDP and TCP, and 0x20 case echoed byte for byte.
    out=$("${D[@]}" "$R1_NAME" TXT)
    expect $g report-txt "$out" status=NOERROR flag:aa answer=1 "re:TXT[[:space:]]+$HINT_231"
    out=$("${D[@]}" "$R1_NAME" A)
    expect $g report-a "$out" status=NOERROR flag:aa answer=1 're:IN[[:space:]]+A[[:space:]]+127\.2\.4\.1$'
    out=$("${D[@]}" "$R1_NAME" AAAA)
    expect $g report-aaaa "$out" status=NOERROR flag:aa answer=1 \
        're:IN[[:space:]]+AAAA[[:space:]]+fd76:6364:2:2:4:1::$'
    out=$("${D[@]}" +tcp "$R1_NAME" TXT)
    expect $g report-txt-tcp "$out" status=NOERROR flag:aa answer=1 "re:TXT[[:space:]]+$HINT_231"
    local mixed
    mixed=$(python3 -c 'import sys; print("".join(c.upper() if i % 2 else c for i, c in enumerate(sys.argv[1])))' "$R1_NAME")
    out=$("${D[@]}" "$mixed" TXT)
    expect $g report-0x20-case-echoed "$out" status=NOERROR answer=1 \
        "re:^${mixed//./\\.}[[:space:]].*TXT[[:space:]]+$HINT_231"
    out=$("${D[@]}" "$R1_NAME" MX)
    expect $g report-other-type-nodata "$out" status=NOERROR flag:aa answer=0 authority=1 "re:$SOA_RE"

    # Partial names (what QNAME minimisation asks first): NODATA, never
    # NXDOMAIN, with the SOA whose TTL and minimum are 60 s.
    out=$("${D[@]}" "$R1_PARTIAL_1" A)
    expect $g partial-1-label-nodata "$out" status=NOERROR flag:aa answer=0 authority=1 \
        "re:^$ZONE\.[[:space:]]+60[[:space:]]+IN[[:space:]]+SOA[[:space:]].* 60$"
    out=$("${D[@]}" "$R1_PARTIAL_2" NS)
    expect $g partial-2-labels-nodata "$out" status=NOERROR flag:aa answer=0 authority=1 "re:$SOA_RE"
    out=$("${D[@]}" "nothing-here.$ZONE" A)
    expect $g no-nxdomain-below-zone "$out" status=NOERROR flag:aa answer=0 authority=1 "re:$SOA_RE"

    # Truncation: the 2.0.0 hint (about 1,500 bytes) never fits in UDP.
    out=$("${D[@]}" +edns=0 +nocookie +bufsize=512 +ignore "$RL_NAME" TXT)
    expect $g tc-edns512 "$out" status=NOERROR flag:tc answer=0
    out=$("${D[@]}" +noedns +ignore "$RL_NAME" TXT)
    expect $g tc-noedns "$out" status=NOERROR flag:tc answer=0
    out=$("${D[@]}" +edns=0 +nocookie +ignore "$RL_NAME" TXT)
    expect $g tc-edns1232 "$out" status=NOERROR flag:tc answer=0
    out=$("${D[@]}" +edns=0 +nocookie "$RL_NAME" TXT)
    expect $g tc-retry-tcp "$out" status=NOERROR flag:aa answer=1 're:Truncated, retrying in TCP mode' \
        "re:msg=security fix INTEROP-TC-long-advisory-text-0001" 're:-0060- in 2\.0\.1"$'

    # Recorded: each report once, partial names not at all.
    local row
    row=$(wait_report "$R1_ID" 1 5)
    if [[ ${row%% *} == 1 && $(cut -d' ' -f3 <<<"$row") == 2.3.1 ]]; then
        pass $g report-recorded-once
    else
        fail $g report-recorded-once "rows for $R1_ID: $row (count duplicates version status)"
    fi
    row=$(wait_report "$RL_ID" 1 5)
    if [[ ${row%% *} == 1 ]]; then
        pass $g tc-report-recorded-once
    else
        fail $g tc-report-recorded-once "rows for $RL_ID: $row"
    fi
}

# ------------------------------------------------------------ direct: kdig

direct_kdig() {
    local g=kdig K=(kq "$VC" +norec)
    local out
    out=$("${K[@]}" +noedns "$ZONE" SOA)
    expect $g soa "$out" status=NOERROR flag:aa answer=1 "re:$SOA_RE"
    out=$("${K[@]}" +edns=1 "$ZONE" SOA)
    expect $g edns1-badvers "$out" status=BADVERS answer=0 're:Version: 0;'
    out=$("${K[@]}" +edns=0 +ednsopt=65001:abcd "$ZONE" SOA)
    expect $g ednsopt-unknown-ignored "$out" status=NOERROR flag:aa answer=1 're:Version: 0;' \
        'nore:65001'
    out=$("${K[@]}" +edns=0 +nsid +padding +expire +cookie +subnet=192.0.2.0/24 "$ZONE" SOA)
    expect $g edns-optlist "$out" status=NOERROR flag:aa answer=1 're:Version: 0;' \
        'nore:^;; (NSID|EXPIRE|CLIENT-SUBNET|COOKIE):'
    out=$("${K[@]}" +dnssec "$ZONE" SOA)
    expect $g edns-do "$out" status=NOERROR flag:aa answer=1 're:Version: 0; flags: do;'
    out=$("${K[@]}" +noedns +zflag "$ZONE" SOA)
    expect $g zflag-cleared "$out" status=NOERROR flag:aa answer=1 noflag:z
    out=$("${K[@]}" +noedns "$ZONE" SOA -c CH)
    expect $g class-ch "$out" status=REFUSED answer=0
    out=$("${K[@]}" +noedns "$ZONE" SOA -c ANY)
    expect $g class-any "$out" status=NOERROR noflag:aa answer=1
    out=$("${K[@]}" +noedns "$ZONE" SOA -c NONE)
    expect $g class-none "$out" status=REFUSED answer=0
    out=$("${K[@]}" +noedns "$ZONE" ANY)
    expect $g any-apex-rfc8482 "$out" status=NOERROR flag:aa 'answer>=1'
    out=$("${K[@]}" "$R1_NAME" TXT)
    expect $g report-txt "$out" status=NOERROR flag:aa answer=1 "re:TXT[[:space:]]+$HINT_231"
    out=$("${K[@]}" +tcp "$R1_NAME" AAAA)
    expect $g report-aaaa-tcp "$out" status=NOERROR flag:aa answer=1 're:AAAA[[:space:]]+fd76:6364:2:2:4:1::'
    out=$("${K[@]}" "$R1_PARTIAL_1" A)
    expect $g partial-nodata "$out" status=NOERROR flag:aa answer=0 authority=1 "re:$SOA_RE"
    out=$("${K[@]}" +bufsize=512 +ignore "$RL_NAME" TXT)
    expect $g tc-bufsize512 "$out" status=NOERROR flag:tc answer=0
    out=$("${K[@]}" +bufsize=512 "$RL_NAME" TXT)
    expect $g tc-retry-tcp "$out" status=NOERROR flag:aa answer=1 "re:msg=security fix INTEROP-TC-long-advisory-text-0001" 're:-0060- in 2\.0\.1"$'
}

if wanted direct; then direct_dig; fi
if wanted kdig; then
    if have kdig; then
        direct_kdig
    else
        skip kdig "kdig is not installed (apt-get install knot-dnsutils)"
    fi
fi

# ------------------------------------------------------ the delegation chain

CHAIN_UP=0
start_chain() {
    local tag zone file addr
    for tag in root parent; do
        if [[ $tag == root ]]; then
            zone=. file=root.zone addr=$NET.10
        else
            zone=example.com file=example.com.zone addr=$NET.11
        fi
        render nsd.conf "nsd-$tag.conf" "ADDR=$addr" "NAME=$zone" "ZONEFILE=$file" "TAG=$tag"
        start "nsd-$tag" nsd -d -c "$WORK/nsd-$tag.conf"
    done
    if ! wait_up nsd-root "$NET.10" . 15; then
        fail chain nsd-root "NSD did not serve the root zone on $NET.10" \
            "$(log_tail nsd-root; tail -n 5 "$WORK/nsd-root-daemon.log" 2>/dev/null)"
        return 1
    fi
    if ! wait_up nsd-parent "$NET.11" example.com 15; then
        fail chain nsd-parent "NSD did not serve example.com on $NET.11" \
            "$(log_tail nsd-parent; tail -n 5 "$WORK/nsd-parent-daemon.log" 2>/dev/null)"
        return 1
    fi
    local out
    out=$(q "$NET.11" +norec "x.$ZONE" TXT)
    expect chain parent-delegation-ns-glue "$out" status=NOERROR noflag:aa answer=0 \
        "re:^$ZONE\.[[:space:]].*NS[[:space:]]+ns1\.$ZONE\." \
        "re:^ns1\.$ZONE\.[[:space:]].*A[[:space:]]+${NET//./\\.}\.20"
    out=$(q "$NET.10" +norec "x.$ZONE" TXT)
    expect chain root-delegation "$out" status=NOERROR noflag:aa answer=0 \
        're:^example\.com\.[[:space:]].*NS[[:space:]]+ns\.example\.com\.'
    CHAIN_UP=1
}

# The resolvers. start_resolver NAME ADDR: renders its config and starts it.
start_resolver() {
    local name=$1 addr=$2
    case $name in
    unbound | unbound-tcp)
        local tcp=no
        [[ $name == unbound-tcp ]] && tcp=yes
        render unbound.conf "$name.conf" "ADDR=$addr" "TAG=$name" "TCP_UPSTREAM=$tcp"
        start "$name" unbound -d -c "$WORK/$name.conf"
        ;;
    kresd | kresd-tcp)
        local policy="-- (no forced TCP)"
        [[ $name == kresd-tcp ]] && policy="policy.add(policy.all(policy.FLAGS({'TCP'})))"
        render kresd.conf "$name.conf" "ADDR=$addr" "TCP_POLICY=$policy"
        mkdir -p "$WORK/$name"
        start "$name" kresd -n -c "$WORK/$name.conf" "$WORK/$name"
        ;;
    pdns)
        mkdir -p "$WORK/pdns"
        render recursor.conf pdns/recursor.conf "ADDR=$addr"
        start pdns pdns_recursor --config-dir="$WORK/pdns"
        ;;
    esac
}

resolver_binary() {
    case $1 in
    unbound*) say unbound ;;
    kresd*) say kresd ;;
    pdns) say pdns_recursor ;;
    esac
}
resolver_package() {
    case $1 in
    unbound*) say unbound ;;
    kresd*) say knot-resolver ;;
    pdns) say pdns-recursor ;;
    esac
}

# check_via GROUP ADDR VERSION CLUSTER: vcheckd check through the resolver.
check_via() {
    timeout 40 "$VCHECKD" check --server "$2:53" --zone "$ZONE" \
        --key "$WORK/vc.example.com.key" --cluster-id "$4" --node-id node-1 \
        --version "$3" --timeout 15 --json 2>&1
}

# check_v2_via GROUP ADDR ZONE VERSION CLUSTER: a protocol v2 check through
# the resolver (the key file makes it v2), with its own policy state.
check_v2_via() {
    timeout 40 "$VCHECKD" check --server "$2:53" --zone "$3" \
        --key "$WORK/$3.v2.public" --cluster-id "$5" --node-id node-1 \
        --version "$4" --timeout 15 --json --state "$WORK/state-$1" 2>&1
}

# Protocol v2 through the resolver: the signed policy arrives (over UDP in
# v2.example.com, over TCP in vc.example.com, whose long advisory makes it
# too big for UDP), the client verifies it and computes the status, and the
# processor opens the frame and records the report once.
resolver_v2_cases() {
    local g=$1 addr=$2 json status proto rid row zone tcp0 tcp1
    for zone in v2.example.com vc.example.com; do
        tcp0=$(db counter queries.tcp)
        json=$(check_v2_via "$g" "$addr" "$zone" 2.3.1 "interop-v2-$g")
        status=$(json_field status <<<"$json")
        proto=$(json_field protocol <<<"$json")
        rid=$(json_field report_id <<<"$json")
        if [[ $status == 2 && $proto == 2 ]]; then
            pass "$g" "v2-policy-verified-$zone"
        else
            fail "$g" "v2-policy-verified-$zone" "vcheckd check (v2) through $g: expected status 2, protocol 2" "$json"
        fi
        [[ -n $rid ]] || continue
        row=$(wait_report "$rid" 1 10)
        if [[ ${row%% *} == 1 && $(cut -d' ' -f3 <<<"$row") == 2.3.1 && $(cut -d' ' -f4 <<<"$row") == 2 ]]; then
            pass "$g" "v2-recorded-once-$zone"
        else
            fail "$g" "v2-recorded-once-$zone" "rows for report $rid: $row (count duplicates version status)"
        fi
        if [[ $zone == vc.example.com ]]; then
            tcp1=$(wait_counter queries.tcp "$tcp0" 6)
            if ((tcp1 > tcp0)); then
                pass "$g" v2-large-policy-over-tcp
            else
                fail "$g" v2-large-policy-over-tcp "TCP queries at vcheckd $tcp0 -> $tcp1 (want more)"
            fi
        fi
    done
}

# The cases run through every resolver.
resolver_cases() {
    local g=$1 addr=$2 out row json

    # 1. vcheckd check (TXT) through the resolver: the hint, recorded once.
    local total0 rejected0
    settle # counters of earlier groups persisted before the baseline
    total0=$(db total)
    rejected0=$(db counter rejected.)
    json=$(check_via "$g" "$addr" 2.3.1 "interop-$g")
    local status latest message rid
    status=$(json_field status <<<"$json")
    latest=$(json_field latest <<<"$json")
    message=$(json_field message <<<"$json")
    rid=$(json_field report_id <<<"$json")
    if [[ $status == 2 && $latest == 2.4.1 && $message == "2.4.1 is available" ]]; then
        pass "$g" check-txt-hint
    else
        fail "$g" check-txt-hint "vcheckd check through $g: expected status 2 latest 2.4.1" "$json"
    fi
    if [[ -n $rid ]]; then
        row=$(wait_report "$rid" 1 5)
        if [[ ${row%% *} == 1 && $(cut -d' ' -f3 <<<"$row") == 2.3.1 && $(cut -d' ' -f4 <<<"$row") == 2 ]]; then
            pass "$g" check-recorded-once
        else
            fail "$g" check-recorded-once "rows for report $rid: $row (count duplicates version status)"
        fi
    fi
    # 2. dig through the resolver: TXT, A and AAAA of one name.
    local name rid2
    read -r name rid2 < <(encode 2.4.0 "interop-$g")
    local R=(q "$addr" +time=10)
    local hint='"v=vc1 status=3 latest=2.4.1 msg=security fix CVE-2026-0001 in 2.4.1"'
    out=$("${R[@]}" "$name" TXT)
    expect "$g" dig-txt "$out" status=NOERROR flag:ra answer=1 "re:IN[[:space:]]+TXT[[:space:]]+$hint\$"
    out=$("${R[@]}" "$name" A)
    expect "$g" dig-a "$out" status=NOERROR answer=1 're:IN[[:space:]]+A[[:space:]]+127\.2\.4\.1$'
    out=$("${R[@]}" "$name" AAAA)
    expect "$g" dig-aaaa "$out" status=NOERROR answer=1 're:IN[[:space:]]+AAAA[[:space:]]+fd76:6364:3:2:4:1::$'
    row=$(wait_report "$rid2" 1 5)
    if [[ ${row%% *} == 1 && $(cut -d' ' -f3 <<<"$row") == 2.4.0 ]]; then
        pass "$g" dig-recorded-once
    else
        fail "$g" dig-recorded-once "rows for report $rid2: $row (count duplicates version status)"
    fi

    # QNAME minimisation: the partial names the resolver asked on the way
    # (Knot Resolver, with a cold cache, gives up minimising at the root and
    # sends the full name; with the zone cut cached it minimises too) were
    # answered NODATA, or the full names would not have followed, and were
    # counted as rejected names, not as reports.
    local rejected1 total1
    rejected1=$(wait_counter rejected. "$rejected0" 6)
    total1=$(db total)
    if ((total1 == total0 + 2)); then
        pass "$g" qmin-partials-not-counted
    else
        fail "$g" qmin-partials-not-counted "reports went from $total0 to $total1 for two names"
    fi
    if ((rejected1 > rejected0)); then
        pass "$g" qmin-partials-seen
    else
        fail "$g" qmin-partials-seen "no partial (minimised) name reached vcheckd: rejected names stayed at $rejected0"
    fi

    # 3. The same name again: from the resolver's cache (TTL below 60, and
    # vcheckd sees no new delivery), still one report.
    sleep 1.2
    local dups0 dups1
    dups0=$(db report "$rid2" | cut -d' ' -f2)
    out=$("${R[@]}" "$name" TXT)
    local ttl
    ttl=$(grep -v '^;' <<<"$out" | grep -m1 -E "IN[[:space:]]+TXT" | awk '{print $2}')
    sleep 1
    row=$(db report "$rid2")
    dups1=$(cut -d' ' -f2 <<<"$row")
    if [[ $(f_status "$out") == NOERROR && -n $ttl ]] && ((ttl < 60)) && [[ $dups1 == "$dups0" && ${row%% *} == 1 ]]; then
        pass "$g" cached-second-query-counted-once
    else
        fail "$g" cached-second-query-counted-once \
            "TTL ${ttl:-none} (want < 60), duplicates $dups0 -> $dups1 (want unchanged), rows ${row%% *} (want 1)" "$out"
    fi

    # 4. A partial name through the resolver: NODATA with the SOA, not
    # NXDOMAIN, and not a report.
    local labels=${name%".$ZONE."} total2
    total2=$(db total)
    out=$("${R[@]}" "${labels##*.}.$ZONE." A)
    expect "$g" partial-name-nodata "$out" status=NOERROR answer=0 "re:$SOA_RE"
    sleep 0.5
    if (($(db total) == total2)); then
        pass "$g" partial-name-not-counted
    else
        fail "$g" partial-name-not-counted "reports went from $total2 to $(db total)"
    fi

    # 5. Negative answers carry the SOA, with TTL and minimum at most 60 s
    # (a new release is seen within a minute).
    out=$("${R[@]}" "$name" MX)
    local soa_line soa_ttl soa_min
    soa_line=$(grep -v '^;' <<<"$out" | grep -m1 -E "$SOA_RE")
    soa_ttl=$(awk '{print $2}' <<<"$soa_line")
    soa_min=$(awk '{print $NF}' <<<"$soa_line")
    if [[ $(f_status "$out") == NOERROR && $(f_count "$out" ANSWER) == 0 && -n $soa_line ]] &&
        ((soa_ttl <= 60 && soa_min <= 60)); then
        pass "$g" negative-soa-short-minimum
    else
        fail "$g" negative-soa-short-minimum "want NOERROR, no answer, SOA with TTL and minimum <= 60" "$out"
    fi

    # 6. An answer too big for UDP (the 2.0.0 hint, ~1,500 bytes): vcheckd
    # sets TC, the resolver retries over TCP, the client gets it over TCP.
    local tcp0 tcp1
    tcp0=$(db counter queries.tcp)
    json=$(check_via "$g" "$addr" 2.0.0 "interop-$g")
    status=$(json_field status <<<"$json")
    message=$(json_field message <<<"$json")
    rid=$(json_field report_id <<<"$json")
    if [[ $status == 3 && $message == "security fix $LONG_ID in 2.0.1" ]]; then
        pass "$g" tc-large-answer-arrives
    else
        fail "$g" tc-large-answer-arrives "expected status 3 and the long advisory" "$json"
    fi
    if [[ -n $rid ]]; then
        row=$(wait_report "$rid" 1 5)
        tcp1=$(wait_counter queries.tcp "$tcp0" 6)
        if [[ ${row%% *} == 1 ]] && ((tcp1 > tcp0)); then
            pass "$g" tc-recorded-once-over-tcp
        else
            fail "$g" tc-recorded-once-over-tcp "rows ${row%% *} (want 1), TCP queries at vcheckd $tcp0 -> $tcp1 (want more)"
        fi
    fi

    # 7. Protocol v2.
    resolver_v2_cases "$g" "$addr"
}

# Resolvers configured to use TCP for every upstream query.
resolver_tcp_cases() {
    local g=$1 addr=$2 json row
    local udp0 tcp0 udp1 tcp1
    settle
    udp0=$(db counter queries.udp)
    tcp0=$(db counter queries.tcp)
    json=$(check_via "$g" "$addr" 2.3.1 "interop-$g")
    local status rid
    status=$(json_field status <<<"$json")
    rid=$(json_field report_id <<<"$json")
    if [[ $status == 2 ]]; then
        pass "$g" check-txt-hint
    else
        fail "$g" check-txt-hint "vcheckd check through $g: expected status 2" "$json"
    fi
    [[ -n $rid ]] || return
    row=$(wait_report "$rid" 1 5)
    tcp1=$(wait_counter queries.tcp "$tcp0" 6)
    settle
    udp1=$(db counter queries.udp)
    if [[ ${row%% *} == 1 ]] && ((tcp1 > tcp0 && udp1 == udp0)); then
        pass "$g" forced-tcp-recorded-once
    else
        fail "$g" forced-tcp-recorded-once \
            "rows ${row%% *} (want 1); at vcheckd TCP queries $tcp0 -> $tcp1 (want more), UDP $udp0 -> $udp1 (want unchanged)"
    fi
}

run_resolver() {
    local name=$1 addr=$2 bin pkg
    bin=$(resolver_binary "$name")
    pkg=$(resolver_package "$name")
    if ! have "$bin"; then
        skip "$name" "$bin is not installed (apt-get install $pkg)"
        return
    fi
    if ((CHAIN_UP == 0)); then
        skip "$name" "the NSD root and parent are not running"
        return
    fi
    start_resolver "$name" "$addr"
    if ! wait_up "$name" "$addr" . 20; then
        fail "$name" start "$name did not answer '. SOA' on $addr:53" "$(log_tail "$name")"
        stop_named "$name"
        return
    fi
    pass "$name" start
    case $name in
    *-tcp) resolver_tcp_cases "$name" "$addr" ;;
    *) resolver_cases "$name" "$addr" ;;
    esac
    stop_named "$name"
}

RESOLVERS=(unbound:31 kresd:32 pdns:33 unbound-tcp:34 kresd-tcp:35)
any_resolver=0
for r in "${RESOLVERS[@]}"; do
    wanted "${r%%:*}" && any_resolver=1
done
if ((any_resolver)); then
    if ! have nsd; then
        for r in "${RESOLVERS[@]}"; do
            wanted "${r%%:*}" && skip "${r%%:*}" "nsd is not installed (apt-get install nsd): no root zone"
        done
    else
        start_chain
        for r in "${RESOLVERS[@]}"; do
            wanted "${r%%:*}" && run_resolver "${r%%:*}" "$NET.${r##*:}"
        done
    fi
fi

# vcheckd stops cleanly (drains its queue) at the end.
stop_named vcheckd
summary
if ((FAILED > 0)); then
    exit 1
fi
if ((SKIPPED > 0 && REQUIRE)); then
    say "VCHECKD_INTEROP_REQUIRE=1 and some groups were skipped"
    exit 1
fi
if ((PASSED == 0)); then
    exit 77
fi
exit 0
