"""The DNS stub over real loopback sockets, against scripted responders for
what a real server will not send: answers with another id or question
(ignored), a resolver that changes the name's letter case (accepted), and
the shape of the query itself."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from typing import Callable

import pytest

from vcheckd_client.dns import EDNS_PAYLOAD, NameServer, Resolver, encode_name, system_name_servers
from vcheckd_client.errors import ConfigError, DnsNetworkError, DnsTimeout

from .support import _response, silent_socket

NAME = "Abc.vc.example.com."


class Responder:
    """A UDP socket on loopback that answers each query with what
    ``script`` returns (a list of datagrams)."""

    def __init__(self, script: Callable[[bytes], list[bytes]]) -> None:
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.script = script
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                request, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.requests.append(request)
            for datagram in self.script(request):
                self.sock.sendto(datagram, peer)

    def close(self) -> None:
        self.sock.close()


def with_id(message: bytes, msg_id: int) -> bytes:
    return struct.pack(">H", msg_id) + message[2:]


def test_only_the_answer_to_our_question_counts() -> None:
    def script(request: bytes) -> list[bytes]:
        good = _response(request, 0, [(b"v=vc2", b"right")])
        other_id = with_id(
            _response(request, 0, [(b"v=vc2", b"wrong id")]), (struct.unpack(">H", request[:2])[0] + 1) % 65536
        )
        other_question = _response(request.replace(b"\x02vc\x07", b"\x02xx\x07"), 0, [(b"v=vc2", b"wrong name")])
        # 0x20: the resolver answers with the name's letters in another case.
        recased = _response(request.replace(b"\x03Abc", b"\x03aBC"), 0, [(b"v=vc2", b"right")])
        return [b"\x00\x01", other_id, other_question, recased, good]

    responder = Responder(script)
    try:
        answer = Resolver([responder.address], timeout=2).query_txt(NAME)
    finally:
        responder.close()
    assert answer.records == ((b"v=vc2", b"right"),)
    assert not answer.tcp and str(answer.server) == responder.address


def test_the_query_is_an_absolute_txt_question_with_edns_1232() -> None:
    responder = Responder(lambda request: [_response(request, 0, [])])
    try:
        resolver = Resolver([responder.address], timeout=2)
        for _ in range(4):
            assert resolver.query_txt(NAME).records == ()
    finally:
        responder.close()
    ids = {struct.unpack(">H", r[:2])[0] for r in responder.requests}
    assert len(ids) > 1, "a random id per query"
    request = responder.requests[0]
    _id, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", request[:12])
    assert (flags, qd, an, ns, ar) == (0x0100, 1, 0, 0, 1), "RD, one question, one OPT record"
    question = encode_name(NAME) + struct.pack(">HH", 16, 1)
    assert request[12 : 12 + len(question)] == question
    opt = request[12 + len(question) :]
    assert opt == b"\x00" + struct.pack(">HHIH", 41, EDNS_PAYLOAD, 0, 0)
    with pytest.raises(ValueError):
        Resolver([responder.address]).query_txt("vc.example.com")  # not absolute


def test_a_silent_server_is_a_timeout_and_the_next_one_is_asked() -> None:
    with silent_socket() as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(DnsTimeout) as timed_out:
            Resolver([address], timeout=0.5).query_txt(NAME)
        assert timed_out.value.server == address
        responder = Responder(lambda request: [_response(request, 0, [(b"ok",)])])
        try:
            answer = Resolver([address, responder.address], timeout=3).query_txt(NAME)
        finally:
            responder.close()
        assert answer.records == ((b"ok",),) and str(answer.server) == responder.address


def test_name_servers_and_resolv_conf(tmp_path: Path) -> None:
    assert NameServer.parse("192.0.2.1") == NameServer("192.0.2.1", 53)
    assert NameServer.parse("192.0.2.1:5300") == NameServer("192.0.2.1", 5300)
    assert NameServer.parse("::1") == NameServer("::1", 53)
    assert NameServer.parse("[::1]:5300") == NameServer("::1", 5300)
    assert str(NameServer("::1", 5300)) == "[::1]:5300"
    for bad in ("192.0.2.1:0", "192.0.2.1:x", "[::1", "[::1]x", ":53"):
        with pytest.raises(ConfigError):
            NameServer.parse(bad)
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# comment\nsearch example.com\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\n"
        "nameserver not-an-address\noptions ndots:5\nnameserver 10.0.0.2 # trailing\n"
    )
    assert system_name_servers(conf) == [NameServer("10.0.0.1"), NameServer("fe80::1%eth0"), NameServer("10.0.0.2")]
    conf.write_text("search example.com\n")
    with pytest.raises(DnsNetworkError, match="no nameserver line"):
        Resolver(resolv_conf=conf).query_txt(NAME)
    with pytest.raises(DnsNetworkError, match="cannot read"):
        Resolver(resolv_conf=tmp_path / "missing").query_txt(NAME)
    with pytest.raises(ConfigError):
        Resolver([])
