"""``vcheckd-client``: one check, a dry run, or the periodic agent, from the
command line. The options and exit codes are ``vcheckd check``'s."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any
from collections.abc import Sequence

from .agent import (
    DEFAULT_BACKOFF_INITIAL,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_INTERVAL,
    DEFAULT_STARTUP_JITTER,
    Agent,
)
from .client import Client, env_flag
from .errors import (
    CheckDisabled,
    ConfigError,
    DnsNetworkError,
    DnsRcodeError,
    DnsTimeout,
    PolicyError,
    ReportError,
    StateError,
    VcheckdError,
)

__all__ = ["main", "exit_code"]

EXIT_CODES = """\
exit codes:
  0   success (also when DISABLE_VERSION_CHECK is set: nothing sent)
  3   timeout: no answer in time
  4   network error: the name server could not be reached
  5   the name server answered SERVFAIL
  6   the name server answered REFUSED
  7   another DNS error (NXDOMAIN, FORMERR, ...)
  8   an answer without a vcheckd policy (is the zone delegated to vcheckd?)
  9   the policy does not verify: signature, key id, form or validity (altered, or not the zone's key)
  10  the policy has expired (a stale server, a replay, or this host's clock)
  11  the policy is older than one accepted before (replayed: issued time or serial)
  64  usage: a wrong option or value
  65  a report that cannot be built (version over 36 bytes, zone too long)
  66  the key file cannot be read
  74  the client state cannot be read or saved
With --json, one JSON object is printed for every outcome.
Environment: DISABLE_VERSION_CHECK=1 sends nothing; DISABLE_TELEMETRY=1 sends no cluster or node identity.
"""

_POLICY_EXIT = {
    "missing": 8,
    "malformed": 9,
    "unknown_key": 9,
    "signature": 9,
    "validity": 9,
    "expired": 10,
    "replayed": 11,
    "rollback": 11,
}
_RCODE_EXIT = {2: 5, 5: 6}


def exit_code(error: BaseException) -> int:
    """The exit code of a failure (see ``--help``)."""
    if isinstance(error, PolicyError):
        return _POLICY_EXIT[error.reason]
    if isinstance(error, DnsTimeout):
        return 3
    if isinstance(error, DnsNetworkError):
        return 4
    if isinstance(error, DnsRcodeError):
        return _RCODE_EXIT.get(error.rcode, 7)
    if isinstance(error, StateError):
        return 74
    if isinstance(error, ReportError):
        return 65
    if isinstance(error, ConfigError):
        return 66 if "cannot read" in str(error) else 64
    return 1


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--zone", default=env("VCHECKD_ZONE"), help="the delegated zone, e.g. vc.example.com [env: VCHECKD_ZONE]"
    )
    common.add_argument(
        "--key",
        default=env("VCHECKD_KEY"),
        help="the zone's public key file (vck2-public:...) or token [env: VCHECKD_KEY]",
    )
    common.add_argument(
        "--version", dest="running", required=True, help="the running version (SemVer; a leading v is accepted)"
    )
    common.add_argument(
        "--cluster-id",
        default=env("VCHECKD_CLUSTER_ID"),
        help="the real cluster id; only its keyed hash is sent [env: VCHECKD_CLUSTER_ID]",
    )
    common.add_argument(
        "--node-id",
        default=env("VCHECKD_NODE_ID"),
        help="the real node id; only its keyed hash is sent [env: VCHECKD_NODE_ID]",
    )
    common.add_argument("--anonymous", action="store_true", help="send no identity (as DISABLE_TELEMETRY=1 does)")
    common.add_argument(
        "--server",
        action="append",
        default=[env("VCHECKD_SERVER")] if env("VCHECKD_SERVER") else None,
        help="a name server to ask, HOST[:PORT]; repeat for several (default: /etc/resolv.conf) [env: VCHECKD_SERVER]",
    )
    common.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    common.add_argument(
        "--state",
        default=None,
        help="the client state file (default: $VCHECKD_STATE, $STATE_DIRECTORY/client-state.json, "
        "$XDG_STATE_HOME/vcheckd/client-state.json, ~/.local/state/vcheckd/client-state.json)",
    )
    common.add_argument(
        "--effort-budget-ms",
        type=int,
        default=250,
        help="milliseconds of one core for the effort proof, at most (default 250)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a sentence")

    parser = argparse.ArgumentParser(
        prog="vcheckd-client",
        description="Check for a newer version with one DNS lookup (vcheckd protocol v2).",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    sub.add_parser(
        "check", parents=[common], help="send one report and print the status", epilog=EXIT_CODES, formatter_class=fmt
    )
    sub.add_parser(
        "dry-run",
        parents=[common],
        help="print the exact query name and its plaintext; send no report",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    agent = sub.add_parser(
        "agent",
        parents=[common],
        help="check periodically (SIGHUP: check now; SIGTERM: stop)",
        description="Check at startup after a random delay, then every --interval with ±10%% jitter; "
        "back off on failure. Writes a JSON status file and a Prometheus textfile.",
        formatter_class=fmt,
    )
    agent.add_argument("--status-file", help="the JSON status file, for GUIs")
    agent.add_argument("--textfile", help="a .prom file for node_exporter's textfile collector")
    agent.add_argument(
        "--interval", type=float, default=DEFAULT_INTERVAL, help="seconds between checks (default 86400)"
    )
    agent.add_argument(
        "--startup-jitter",
        type=float,
        default=DEFAULT_STARTUP_JITTER,
        help="the first check within this many seconds (default 300)",
    )
    agent.add_argument(
        "--backoff-initial",
        type=float,
        default=DEFAULT_BACKOFF_INITIAL,
        help="first retry after a failure (default 60 s)",
    )
    agent.add_argument(
        "--backoff-max", type=float, default=DEFAULT_BACKOFF_MAX, help="longest retry wait (default 21600 s)"
    )
    agent.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


class _Usage(Exception):
    pass


def _client(args: argparse.Namespace) -> Client:
    missing = [flag for flag, value in (("--zone", args.zone), ("--key", args.key)) if not value]
    anonymous = args.anonymous or env_flag(os.environ, "DISABLE_TELEMETRY")
    if not anonymous:
        missing += [
            flag for flag, value in (("--cluster-id", args.cluster_id), ("--node-id", args.node_id)) if value is None
        ]
    if missing:
        extra = " (or --anonymous / DISABLE_TELEMETRY=1 to send no identity)" if not anonymous else ""
        raise _Usage(f"{', '.join(missing)} required{extra}")
    if args.effort_budget_ms < 0:
        raise _Usage("--effort-budget-ms cannot be negative")
    return Client(
        args.zone,
        args.key,
        args.running,
        cluster_id=None if anonymous else args.cluster_id,
        node_id=None if anonymous else args.node_id,
        name_servers=args.server,
        state_path=args.state,
        effort_budget=args.effort_budget_ms / 1000.0,
        timeout=args.timeout,
    )


def _print(args: argparse.Namespace, doc: dict[str, Any], sentence: str, to_stderr: bool = False) -> None:
    if args.json:
        print(json.dumps(doc, sort_keys=True))
    if sentence and (to_stderr or not args.json):
        print(sentence, file=sys.stderr if to_stderr else sys.stdout)


def _failure_doc(args: argparse.Namespace, error: BaseException, code: int, client: Client | None) -> dict[str, Any]:
    check_failed = isinstance(error, VcheckdError) and not isinstance(error, (ConfigError, _Usage))
    last = client.last_known() if client is not None and check_failed else None
    return {
        "status": -1,
        "status_name": "stale" if check_failed else "error",
        "message": "",
        "running": args.running,
        "exit_code": code,
        "error": str(error),
        "reason": error.reason if isinstance(error, PolicyError) else None,
        "rcode": error.rcode_name if isinstance(error, DnsRcodeError) else None,
        "last_known": last.to_json() if last is not None else None,
    }


def _check(args: argparse.Namespace, client: Client) -> int:
    result = client.check()
    doc = result.to_json()
    doc.update(exit_code=0, error=None, last_known=None)
    verb = {0: "unknown release", 1: "up to date", 2: "upgrade available", 3: "upgrade required"}[int(result.status)]
    _print(args, doc, f"vcheckd-client: {verb} (running {result.running}; latest {result.latest}): {result.message}")
    return 0


def _dry_run(args: argparse.Namespace, client: Client) -> int:
    dry = client.dry_run()
    doc = dry.to_json()
    r = dry.report
    lines = [
        f"query name: {r.name}",
        "query type: TXT",
        "protocol:   2",
        "plaintext (what the server reads):",
        f"  report id: {r.report_id.hex()}",
        f"  key id:    {r.key_id}",
        f"  epoch:     {r.epoch}",
        f"  timestamp: {r.timestamp}",
        f"  cluster:   {r.identity.cluster.hex() if r.identity else '(withheld)'}",
        f"  node:      {r.identity.node.hex() if r.identity else '(withheld)'}",
        f"  version:   {r.version}",
        f"  flags:     {r.flags}",
        f"effort: {r.effort} bits (the policy suggests {dry.policy.effort})",
        f"verified policy: key id {dry.policy.key_id}, serial {dry.policy.serial}, "
        f"expires {dry.policy.expires} (unix), latest {dry.policy.latest}"
        + (" (fetched)" if dry.fetched else " (kept)"),
        f"status from the policy: {int(dry.verdict.status)} ({dry.verdict.status.label}): {dry.verdict.message}",
        "nothing was reported",
    ]
    _print(args, doc, "\n".join(lines))
    return 0


def _agent(args: argparse.Namespace, client: Client) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent(
        client,
        status_file=args.status_file,
        textfile=args.textfile,
        interval=args.interval,
        startup_jitter=args.startup_jitter,
        backoff_initial=args.backoff_initial,
        backoff_max=args.backoff_max,
    )
    agent.install_signal_handlers()
    agent.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The console script; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) and 64
    client: Client | None = None
    try:
        client = _client(args)
        if args.command == "agent":
            return _agent(args, client)
        if args.command == "dry-run":
            return _dry_run(args, client)
        return _check(args, client)
    except CheckDisabled as e:
        _print(
            args,
            {
                "status": -1,
                "status_name": "disabled",
                "message": str(e),
                "running": args.running,
                "exit_code": 0,
                "error": None,
            },
            f"vcheckd-client: version check disabled ({e})",
        )
        return 0
    except (VcheckdError, _Usage) as e:
        code = 64 if isinstance(e, _Usage) else exit_code(e)
        _print(args, _failure_doc(args, e, code, client), f"vcheckd-client: error: {e}", to_stderr=True)
        return code
