"""What the tests share: the repository's vector file, real vcheckd
servers for the live tests, and a UDP proxy in front of them that can
rewrite answers.

The binary is ``$VCHECKD_BIN``, else the repository's, built with
``cargo build --bin vcheckd``. When neither can be had the live tests skip
with the reason, or fail when ``VCHECKD_INTEROP_REQUIRE=1`` (CI).
"""

from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, NoReturn
from collections.abc import Sequence

import pytest

from vcheckd_client.dns import NameServer, _parse, _read_name

REPO = Path(__file__).resolve().parents[3]
VECTORS_PATH = REPO / "docs" / "vectors" / "v2.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

ZONE = "vc.example.com"
SERIAL = 2026112301
RELEASES = """versions = ["2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["2.2"]
[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
"""
ADVISORY_URL = "https://vendor.example/security/{id}"
REQUIRE = os.environ.get("VCHECKD_INTEROP_REQUIRE") == "1"

Records = Sequence[Sequence[bytes]]


def missing(what: str) -> NoReturn:
    """Skips the test, or fails it in CI (VCHECKD_INTEROP_REQUIRE=1)."""
    if REQUIRE:
        pytest.fail(f"{what}, and VCHECKD_INTEROP_REQUIRE=1")
    pytest.skip(what)


@functools.cache
def _find_binary() -> Path | str:
    """The vcheckd binary, or why there is none."""
    given = os.environ.get("VCHECKD_BIN")
    if given:
        path = Path(given)
        return path if os.access(path, os.X_OK) else f"VCHECKD_BIN={given} is not an executable file"
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    built = target / "debug" / "vcheckd"
    cargo = shutil.which("cargo")
    if cargo is None:
        if built.exists():
            return built
        return "vcheckd is not built and cargo is not installed (install Rust, or set VCHECKD_BIN)"
    run = subprocess.run(
        [cargo, "build", "--bin", "vcheckd", "--locked"], cwd=REPO, capture_output=True, text=True, timeout=3600
    )
    if run.returncode != 0:
        return f"cargo build --bin vcheckd failed: {run.stderr[-2000:]}"
    return built


def vcheckd_binary() -> Path:
    found = _find_binary()
    if isinstance(found, str):
        missing(found)
    return found


def faketime_works() -> bool:
    """Whether ``faketime`` (Debian's libfaketime) runs here; in CI it must."""
    if shutil.which("faketime") is None:
        return False
    return subprocess.run(["faketime", "-f", "-3d", "true"]).returncode == 0


def keygen(binary: Path, folder: Path, key_id: int, clock: str | None = None) -> Path:
    """A v2 key pair in ``folder`` (v<id>.private, v<id>.public), made at a
    clock offset such as ``-4d`` (its ratchet starts that week)."""
    private, public = folder / f"v{key_id}.private", folder / f"v{key_id}.public"
    cmd = [str(binary), "keygen", "--id", str(key_id), "--private", str(private), "--public", str(public)]
    if clock:
        cmd = ["faketime", "-f", clock] + cmd
    subprocess.run(cmd, check=True, capture_output=True)
    return public


class VcheckdServer:
    """``vcheckd serve --config`` in its own folder, on a free loopback port,
    serving the test zone with ``private`` (a private key file)."""

    def __init__(
        self,
        binary: Path,
        folder: Path,
        private: Path,
        *,
        releases: str = RELEASES,
        serial: int = SERIAL,
        clock: str | None = None,
        advisory_url: str | None = ADVISORY_URL,
    ) -> None:
        self.binary, self.folder, self.clock = binary, folder, clock
        folder.mkdir(parents=True, exist_ok=True)
        if private.parent != folder:
            shutil.copy(private, folder / private.name)
            os.chmod(folder / private.name, 0o600)
        url = f'advisory_url = "{advisory_url}"\n' if advisory_url else ""
        (folder / "config.toml").write_text(
            f"""[server]
listen = ["127.0.0.1:0"]
database = "vcheckd.sqlite"
rrl_rate = 0

[[zone]]
name = "{ZONE}"
file = "zone.txt"
private_keys = ["{private.name}"]
accept_v1 = false
answer_ttl = 60
{url}
[zone.releases]
{releases}
"""
        )
        self.set_serial(serial)
        self.args = ["--config", "config.toml"]
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.log: list[str] = []

    @classmethod
    def embedded(cls, binary: Path, folder: Path) -> VcheckdServer:
        """``vcheckd serve`` without --config, as README.md's quick start
        runs it (its demo keys made in ``folder/data``), on free ports."""
        server = cls.__new__(cls)
        server.binary, server.folder, server.clock = binary, folder, None
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(REPO / "zones", folder / "zones")
        server.args = ["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]
        server.process, server.port, server.log = None, 0, []
        return server

    def set_serial(self, serial: int) -> None:
        (self.folder / "zone.txt").write_text(
            f"$ORIGIN {ZONE}.\n$TTL 300\n"
            f"@ IN SOA ns1.{ZONE}. hostmaster.example.com. {serial} 3600 600 1209600 60\n"
            f"@ IN NS ns1.{ZONE}.\nns1 IN A 127.0.0.1\n"
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.folder / "vcheckd.sqlite"

    def start(self) -> VcheckdServer:
        cmd = [str(self.binary), "serve", *self.args]
        if self.clock:
            cmd = ["faketime", "-f", self.clock] + cmd
        # libfaketime's fake monotonic clock stalls the server's timers and
        # its shutdown; the wall clock is what signs the policy
        # (docs/PROTOCOL.md §22).
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        # A session of its own: signals go to its process group, which holds
        # vcheckd also when faketime runs it as a child rather than exec'ing it.
        self.process = subprocess.Popen(
            cmd,
            cwd=self.folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        stderr = self.process.stderr
        assert stderr is not None

        def pump() -> None:
            for line in stderr:
                self.log.append(line.rstrip())
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            if "listening on UDP and TCP" in line and "addr=127.0.0.1:" in line:
                self.port = int(line.rsplit("addr=127.0.0.1:", 1)[1].split()[0])
                return self
        self.stop()
        raise RuntimeError("vcheckd did not start:\n" + "\n".join(self.log))

    def reload(self) -> None:
        """SIGHUP: re-reads the zone, keys and releases, signs anew."""
        assert self.process is not None and self.clock is None, "faketime's wrapper would die of SIGHUP"
        os.killpg(self.process.pid, signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM to its process group, and waits until every process of
        it has ended: what is received is in the database after."""
        if self.process is None:
            return
        process, self.process = self.process, None
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 60
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        while time.monotonic() < deadline + 5:
            try:
                os.killpg(process.pid, signal.SIGKILL if time.monotonic() > deadline else 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        if process.poll() is None:
            process.wait()

    def reports(self, report_id: str) -> tuple[int, int]:
        """(rows, duplicates) of one report id in the server's database."""
        if not self.db.exists():
            return 0, 0
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            row = conn.execute(
                "SELECT count(*), coalesce(sum(duplicates), 0) FROM reports WHERE report_id = ?",
                (bytes.fromhex(report_id),),
            ).fetchone()
        return int(row[0]), int(row[1])

    def wait_recorded(self, report_id: str, timeout: float = 60) -> tuple[int, int]:
        """Polls the database until the report is there (the server opens
        and records frames off the answer path)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.reports(report_id)
            except sqlite3.OperationalError:
                found = (0, 0)  # the schema is being made
            if found[0] or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def check(
        self, version: str, state: Path, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``vcheckd check --json`` against this server."""
        cmd = [str(self.binary), "check", "--server", self.address, "--zone", ZONE]
        cmd += ["--version", version, "--json", "--state", str(state), "--timeout", "5", *extra]
        base = {k: v for k, v in os.environ.items() if k not in ("DISABLE_TELEMETRY", "DISABLE_VERSION_CHECK")}
        return subprocess.run(cmd, capture_output=True, text=True, env={**base, **(env or {})}, timeout=120)


Rewrite = Callable[[list[tuple[bytes, ...]]], Records]


def _question_end(message: bytes) -> int:
    _name, pos = _read_name(message, 12)
    return pos + 4


def _response(request: bytes, rcode: int, records: Records) -> bytes:
    """An authoritative answer to ``request`` with these TXT records."""
    msg_id, flags = struct.unpack(">HH", request[:4])
    header = struct.pack(">HHHHHH", msg_id, 0x8400 | (flags & 0x0100) | rcode, 1, len(records), 0, 0)
    out = header + request[12 : _question_end(request)]
    for strings in records:
        rdata = b"".join(bytes([len(s)]) + s for s in strings)
        out += b"\xc0\x0c" + struct.pack(">HHIH", 16, 1, 60, len(rdata)) + rdata
    return out


class Proxy:
    """A UDP proxy on loopback in front of ``upstream`` (settable). Each
    query goes to the real server; its answer is passed on as it is, or
    replaced (whatever its code) by a NOERROR answer with the TXT records
    that ``rewrite`` returns, as an attacker on the path would. ``rcode`` answers
    every query with that error instead; ``drop`` answers nothing."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rewrite: Rewrite | None = None
        self.rcode: int | None = None
        self.drop = False
        self.last: list[tuple[bytes, ...]] | None = None
        self.queries: list[bytes] = []
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                request, client = self.socket.recvfrom(65535)
            except OSError:
                return
            try:
                self._answer(request, client)
            except Exception as e:  # a test proxy: say why, keep serving
                print(f"proxy: {e!r}")

    def _answer(self, request: bytes, client: tuple[str, int]) -> None:
        name, _ = _read_name(request, 12)
        self.queries.append(name)
        if self.drop:
            return
        if self.rcode is not None:
            self.socket.sendto(_response(request, self.rcode, []), client)
            return
        server = NameServer.parse(self.upstream)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
            up.settimeout(1)
            up.sendto(request, (server.host, server.port))
            try:
                answer = up.recv(65535)
            except OSError:
                return  # the server is down: the client times out
        msg_id = struct.unpack(">H", request[:2])[0]
        parsed = _parse(answer, msg_id, _read_name(request, 12)[0])
        if parsed is None:
            return
        _rcode, _truncated, records = parsed
        if records:
            self.last = records
        if self.rewrite is None:
            self.socket.sendto(answer, client)
            return
        self.socket.sendto(_response(request, 0, self.rewrite(records)), client)

    def close(self) -> None:
        self._closed = True
        self.socket.close()


def silent_socket() -> socket.socket:
    """A bound UDP socket that never answers: a name server that is down
    but whose host still accepts datagrams (a timeout, not a refusal)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s
