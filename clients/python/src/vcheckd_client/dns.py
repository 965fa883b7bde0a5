"""A minimal DNS stub resolver for one question type: TXT, class IN.

Standard library sockets only, as a report needs them (PROTOCOL §7, §21):

- the question is an absolute name (a trailing dot: no search domain is
  ever appended), with RD=1 and an EDNS(0) OPT record advertising a
  1232-byte UDP payload;
- over UDP from a fresh socket (an ephemeral port the kernel picks) with a
  random message id; an answer counts only if it comes from the server
  asked (a connected socket) and matches the id and the question (names
  compared case-insensitively: resolvers may change the letter case);
- an answer with TC=1 is asked again over TCP (RFC 7766), same server;
- a timeout, an unreachable server, SERVFAIL or REFUSED moves on to the
  next name server, with the same name (the server counts one report
  however often it arrives), until the time is up; any other error code
  (NXDOMAIN, FORMERR, ...) is final.

The name servers are the ones given, else the ``nameserver`` lines of
/etc/resolv.conf.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

from .errors import ConfigError, DnsError, DnsNetworkError, DnsRcodeError, DnsTimeout

__all__ = ["NameServer", "TxtAnswer", "Resolver", "system_name_servers", "EDNS_PAYLOAD"]

EDNS_PAYLOAD = 1232
"""The UDP payload advertised (the DNS flag day 2020 value)."""
TYPE_TXT, TYPE_OPT, CLASS_IN = 16, 41, 1
RCODE_NOERROR, RCODE_SERVFAIL, RCODE_REFUSED = 0, 2, 5
_FLAG_QR, _FLAG_TC, _FLAG_RD = 0x8000, 0x0200, 0x0100
_RETRY_ELSEWHERE = (RCODE_SERVFAIL, RCODE_REFUSED)
_SockAddr = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope id)


@dataclass(frozen=True)
class NameServer:
    """A name server to ask: an address (or host name) and a port."""

    host: str
    port: int = 53

    @classmethod
    def parse(cls, text: str) -> NameServer:
        """``HOST``, ``HOST:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address."""
        text = text.strip()
        host, port = text, 53
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ConfigError(f"name server {text!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
            port_text = rest[1:]
            if rest:
                port = cls._port(text, port_text)
        elif text.count(":") == 1:
            host, port_text = text.split(":")
            port = cls._port(text, port_text)
        if not host:
            raise ConfigError(f"name server {text!r} has no address")
        return cls(host, port)

    @staticmethod
    def _port(text: str, port_text: str) -> int:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"name server {text!r}: the port must be 1-65535")
        return int(port_text)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def system_name_servers(path: str | os.PathLike[str] = "/etc/resolv.conf") -> list[NameServer]:
    """The ``nameserver`` lines of resolv.conf, in order (an IPv6 zone
    index such as ``%eth0`` kept)."""
    servers = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    address = fields[1]
                    try:
                        ipaddress.ip_address(address.split("%", 1)[0])
                    except ValueError:
                        continue  # resolv.conf allows addresses only
                    servers.append(NameServer(address))
    except OSError as e:
        raise DnsNetworkError(f"cannot read {os.fspath(path)}: {e}; give the name servers to ask") from e
    return servers


@dataclass(frozen=True)
class TxtAnswer:
    """A NOERROR answer to a TXT question."""

    records: tuple[tuple[bytes, ...], ...]
    """The TXT records of the answer section, each as its character-strings."""
    server: NameServer
    """The name server that answered."""
    tcp: bool
    """Whether the answer came over TCP (the UDP one was truncated)."""


def encode_name(name: str) -> bytes:
    """An absolute name in wire form (labels, then the root)."""
    if not name.endswith("."):
        raise ValueError(f"{name!r} is not absolute (no trailing dot)")
    out = bytearray()
    for label in name[:-1].split(".") if name != "." else []:
        raw = label.encode("ascii")
        if not 0 < len(raw) <= 63:
            raise ValueError(f"{name!r} has an empty label or one over 63 characters")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"{name!r} is longer than 255 bytes")
    return bytes(out)


def _query(msg_id: int, qname: bytes) -> bytes:
    header = struct.pack(">HHHHHH", msg_id, _FLAG_RD, 1, 0, 0, 1)
    question = qname + struct.pack(">HH", TYPE_TXT, CLASS_IN)
    opt = b"\x00" + struct.pack(">HHIH", TYPE_OPT, EDNS_PAYLOAD, 0, 0)
    return header + question + opt


class _Malformed(Exception):
    """An answer that does not parse (ignored over UDP: it may be forged)."""


def _read_name(msg: bytes, pos: int) -> tuple[bytes, int]:
    """(lower-cased wire name, position after it), following compression
    pointers (each to an earlier position, so that they cannot loop)."""
    labels: list[bytes] = []
    end = -1
    limit = pos
    while True:
        if pos >= len(msg):
            raise _Malformed("name runs past the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise _Malformed("truncated pointer")
            target = ((length & 0x3F) << 8) | msg[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= limit:
                raise _Malformed("pointer forward")
            pos = limit = target
            continue
        if length & 0xC0:
            raise _Malformed("unknown label type")
        pos += 1
        if length == 0:
            break
        labels.append(msg[pos : pos + length].lower())
        pos += length
    wire = b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"
    return wire, (end if end >= 0 else pos)


def _parse(msg: bytes, msg_id: int, qname: bytes) -> tuple[int, bool, list[tuple[bytes, ...]]] | None:
    """(rcode, truncated, TXT records) of an answer to our question, or None
    when ``msg`` is not one (another id or question, not a response)."""
    if len(msg) < 12:
        return None
    rid, flags, qd, an, _ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    if rid != msg_id or not flags & _FLAG_QR or (flags >> 11) & 0xF != 0 or qd != 1:
        return None
    rcode, truncated = flags & 0xF, bool(flags & _FLAG_TC)
    try:
        name, pos = _read_name(msg, 12)
        if pos + 4 > len(msg):
            return None
        qtype, qclass = struct.unpack(">HH", msg[pos : pos + 4])
        if name != qname.lower() or qtype != TYPE_TXT or qclass != CLASS_IN:
            return None
        pos += 4
        records: list[tuple[bytes, ...]] = []
        for _ in range(an):
            _owner, pos = _read_name(msg, pos)
            if pos + 10 > len(msg):
                raise _Malformed("truncated record")
            rtype, rclass, _ttl, rdlen = struct.unpack(">HHIH", msg[pos : pos + 10])
            pos += 10
            rdata = msg[pos : pos + rdlen]
            if len(rdata) != rdlen:
                raise _Malformed("truncated record data")
            pos += rdlen
            if rtype == TYPE_TXT and rclass == CLASS_IN:
                strings, i = [], 0
                while i < len(rdata):
                    n = rdata[i]
                    if i + 1 + n > len(rdata):
                        raise _Malformed("truncated character-string")
                    strings.append(rdata[i + 1 : i + 1 + n])
                    i += 1 + n
                records.append(tuple(strings))
    except _Malformed:
        if truncated:
            return rcode, True, []  # cut short by the sender: TCP has it whole
        raise
    return rcode, truncated, records


class _Outcome:
    """The failures met while asking several servers; the most telling one
    is raised at the end."""

    def __init__(self) -> None:
        self.rcode: DnsRcodeError | None = None
        self.network: DnsNetworkError | None = None
        self.timeout: DnsTimeout | None = None

    def error(self, name: str, timeout: float) -> DnsError:
        return self.rcode or self.network or self.timeout or DnsTimeout(f"no answer for {name} in {timeout:g} s")


class Resolver:
    """Asks TXT questions of the given name servers (default: those of
    /etc/resolv.conf, read at each question so that a changed file is
    followed). ``timeout`` bounds one question, all servers and retries
    included."""

    def __init__(
        self,
        servers: Sequence[NameServer | str] | None = None,
        timeout: float = 5.0,
        resolv_conf: str | os.PathLike[str] = "/etc/resolv.conf",
    ) -> None:
        if timeout <= 0:
            raise ConfigError("the DNS timeout must be positive")
        self.servers = (
            None if servers is None else [s if isinstance(s, NameServer) else NameServer.parse(s) for s in servers]
        )
        if self.servers is not None and not self.servers:
            raise ConfigError("an empty list of name servers: give at least one, or None for /etc/resolv.conf")
        self.timeout = timeout
        self.resolv_conf = resolv_conf

    def name_servers(self) -> list[NameServer]:
        if self.servers is not None:
            return list(self.servers)
        servers = system_name_servers(self.resolv_conf)
        if not servers:
            raise DnsNetworkError(f"no nameserver line in {os.fspath(self.resolv_conf)}: give the name servers to ask")
        return servers

    def query_txt(self, name: str) -> TxtAnswer:
        """The TXT records of the absolute ``name``; raises
        :class:`DnsTimeout`, :class:`DnsNetworkError` or
        :class:`DnsRcodeError`."""
        qname = encode_name(name)
        servers = self.name_servers()
        deadline = time.monotonic() + self.timeout
        # Each try waits a share of the time, at least a second, so that a
        # second round reaches a server that lost one datagram.
        per_try = max(1.0, self.timeout / (2 * len(servers)))
        outcome = _Outcome()
        for _round in range(2):
            timed_out = False
            for server in servers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise outcome.error(name, self.timeout)
                try:
                    return self._ask(server, qname, name, min(per_try, remaining), deadline)
                except DnsRcodeError as e:
                    if e.rcode not in _RETRY_ELSEWHERE:
                        raise
                    outcome.rcode = e
                except DnsNetworkError as e:
                    outcome.network = e
                except DnsTimeout as e:
                    outcome.timeout, timed_out = e, True
            if not timed_out:
                break  # every server answered or refused at once: asking again will not help
        raise outcome.error(name, self.timeout)

    def _ask(self, server: NameServer, qname: bytes, name: str, wait: float, deadline: float) -> TxtAnswer:
        msg_id = secrets.randbits(16)
        request = _query(msg_id, qname)
        family, address = self._address(server)
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect(address)
                sock.send(request)
                until = time.monotonic() + wait
                while True:
                    left = until - time.monotonic()
                    if left <= 0:
                        raise DnsTimeout(f"no answer from {server} for {name}", str(server))
                    sock.settimeout(left)
                    try:
                        data = sock.recv(65535)
                    except socket.timeout:
                        continue
                    try:
                        parsed = _parse(data, msg_id, qname)
                    except _Malformed:
                        continue  # not an answer we can use; a real one may follow
                    if parsed is not None:
                        break
        except OSError as e:
            raise DnsNetworkError(f"network error talking to {server}: {e.strerror or e}", str(server)) from e
        rcode, truncated, records = parsed
        tcp = False
        if truncated:
            rcode, records = self._ask_tcp(server, family, address, qname, name, deadline)
            tcp = True
        if rcode != RCODE_NOERROR:
            raise DnsRcodeError(rcode, str(server), _hint(rcode))
        return TxtAnswer(tuple(records), server, tcp)

    def _ask_tcp(
        self,
        server: NameServer,
        family: int,
        address: _SockAddr,
        qname: bytes,
        name: str,
        deadline: float,
    ) -> tuple[int, list[tuple[bytes, ...]]]:
        msg_id = secrets.randbits(16)
        request = _query(msg_id, qname)
        left = max(deadline - time.monotonic(), 1.0)
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(left)
                sock.connect(address)
                sock.sendall(struct.pack(">H", len(request)) + request)
                (length,) = struct.unpack(">H", _recv_exact(sock, 2))
                data = _recv_exact(sock, length)
        except socket.timeout as e:
            raise DnsTimeout(f"no answer over TCP from {server} for {name}", str(server)) from e
        except OSError as e:
            raise DnsNetworkError(f"network error over TCP to {server}: {e.strerror or e}", str(server)) from e
        try:
            parsed = _parse(data, msg_id, qname)
        except _Malformed as e:
            raise DnsNetworkError(f"{server} sent a malformed answer over TCP: {e}", str(server)) from e
        if parsed is None:
            raise DnsNetworkError(f"{server} answered another question over TCP", str(server))
        return parsed[0], parsed[2]

    @staticmethod
    def _address(server: NameServer) -> tuple[int, _SockAddr]:
        try:
            infos = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise DnsNetworkError(f"name server {server}: {e.strerror or e}", str(server)) from e
        family, _, _, _, address = infos[0]
        return int(family), tuple(address)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionResetError("the connection closed mid-answer")
        out += chunk
    return bytes(out)


def _hint(rcode: int) -> str:
    if rcode == RCODE_REFUSED:
        return (
            "that name server does not serve the zone: check the zone name, and that the name servers "
            "asked (or the resolver's delegation) lead to the zone's vcheckd servers"
        )
    if rcode == RCODE_SERVFAIL:
        return (
            "the server could not answer or keep the report (a vcheckd server whose journal is full, "
            "or a resolver that cannot reach the zone's servers); try again later"
        )
    return ""
