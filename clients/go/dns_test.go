package vcheckd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQueryEncoding(t *testing.T) {
	q, err := buildQuery(0xbeef, "5._policy.vc.example.com.", typeTXT)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1,
		1, '5', 7, '_', 'p', 'o', 'l', 'i', 'c', 'y', 2, 'v', 'c', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
		0, 16, 0, 1,
		0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(q, want) {
		t.Errorf("query\n got %x\nwant %x", q, want)
	}
	for _, bad := range []string{"vc.example.com", "a..b.", strings.Repeat("a", 64) + ".", strings.Repeat("abcdefghi.", 26)} {
		if _, err := buildQuery(1, bad, typeTXT); err == nil {
			t.Errorf("%q was encoded", bad)
		}
	}
}

// answerFor builds a response to q: the question echoed, then records.
func answerFor(q []byte, flags uint16, records ...[]byte) []byte {
	_, end, _ := readName(q, headerSize)
	m := append([]byte(nil), q[:end+4]...)
	binary.BigEndian.PutUint16(m[2:], flags)
	binary.BigEndian.PutUint16(m[6:], uint16(len(records)))
	binary.BigEndian.PutUint16(m[10:], 0)
	for _, r := range records {
		m = append(m, r...)
	}
	return m
}

func txtRecord(owner []byte, strs ...string) []byte {
	var rdata []byte
	for _, s := range strs {
		rdata = append(rdata, byte(len(s)))
		rdata = append(rdata, s...)
	}
	r := append([]byte(nil), owner...)
	r = append(r, 0, typeTXT, 0, classIN, 0, 0, 0, 60, byte(len(rdata)>>8), byte(len(rdata)))
	return append(r, rdata...)
}

func TestResponseDecoding(t *testing.T) {
	q, _ := buildQuery(7, "x.vc.example.com.", typeTXT)
	// Case changed by the resolver (0x20), a compressed owner, a CNAME to
	// another owner, and a TXT record of a third name that is not ours.
	q2 := append([]byte(nil), q...)
	q2[13] = 'X'
	cname := []byte{0xc0, 0x0c, 0, typeCNAME, 0, classIN, 0, 0, 0, 60, 0, 4, 1, 'y', 0xc0, 14}
	msg := answerFor(q2, 0x8180,
		txtRecord([]byte{0xc0, 0x0c}, "v=vc2", "abc"),
		cname,
		txtRecord([]byte{1, 'y', 0xc0, 14}, "via", "cname"),
		txtRecord([]byte{1, 'z', 0xc0, 14}, "other"))
	r, err := parseResponse(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !r.matches(7, "x.vc.example.com.", typeTXT) || r.matches(8, "x.vc.example.com.", typeTXT) || r.matches(7, "y.vc.example.com.", typeTXT) {
		t.Errorf("matching: %+v", r)
	}
	if len(r.txt) != 2 || string(r.txt[0][1]) != "abc" || string(r.txt[1][1]) != "cname" {
		t.Errorf("TXT records: %q", r.txt)
	}
	// Extended RCODE from the OPT record (BADVERS = 16).
	opt := answerFor(q, 0x8180)
	binary.BigEndian.PutUint16(opt[10:], 1)
	opt = append(opt, 0, 0, typeOPT, 4, 0xd0, 1, 0, 0, 0, 0, 0)
	if r, err := parseResponse(opt); err != nil || r.rcode != RcodeBadVers {
		t.Errorf("extended rcode: %v %v", r, err)
	}
	// A pointer loop and a forward pointer are refused, not followed.
	loop := answerFor(q, 0x8180)
	binary.BigEndian.PutUint16(loop[6:], 1)
	at := len(loop)
	loop = append(loop, 0xc0|byte(at>>8), byte(at))
	if _, err := parseResponse(loop); !errors.Is(err, errBadMessage) {
		t.Errorf("a pointer loop: %v", err)
	}
}

func FuzzParseResponse(f *testing.F) {
	q, _ := buildQuery(7, "x.vc.example.com.", typeTXT)
	f.Add(q)
	f.Add(answerFor(q, 0x8180, txtRecord([]byte{0xc0, 0x0c}, "v=vc2", "abc")))
	f.Add(answerFor(q, 0x8380))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := parseResponse(msg)
		if err != nil {
			if r != nil || !errors.Is(err, errBadMessage) {
				t.Fatalf("an error with a result, or an unexpected error: %v", err)
			}
			return
		}
		total := 0
		for _, rec := range r.txt {
			for _, s := range rec {
				total += len(s)
			}
		}
		if total > len(msg) {
			t.Fatalf("%d bytes of TXT from a %d-byte message", total, len(msg))
		}
	})
}

func TestResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	text := "# comment\nsearch example.com\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nnameserver not-an-ip\noptions ndots:5 timeout:2 attempts:3\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := systemResolver(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.servers, " ") != "10.0.0.53:53 [fe80::1%eth0]:53" || r.timeout != 2*time.Second || r.attempts != 3 {
		t.Errorf("%+v", r)
	}
	if _, err := systemResolver(filepath.Join(t.TempDir(), "none")); !errors.Is(err, ErrConfig) {
		t.Errorf("a missing resolv.conf: %v", err)
	}
	for in, want := range map[string]string{"127.0.0.1": "127.0.0.1:53", "127.0.0.1:5300": "127.0.0.1:5300", "::1": "[::1]:53", "[::1]:5300": "[::1]:5300", "ns.example": "ns.example:53"} {
		if got := serverAddress(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// A stub on loopback: answers that do not match the query (another id,
// another question) are ignored, the matching one is taken; a truncated
// one is asked again over TCP with a two-byte length.
func TestExchangeMatchingAndTCP(t *testing.T) {
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: u.LocalAddr().(*net.UDPAddr).Port})
	if err != nil {
		t.Skipf("the UDP port is taken for TCP: %v", err)
	}
	defer l.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			q := append([]byte(nil), buf[:n]...)
			wrongID := answerFor(q, 0x8180, txtRecord([]byte{0xc0, 0x0c}, "wrong id"))
			wrongID[0] ^= 0xff
			other, _ := buildQuery(binary.BigEndian.Uint16(q), "other.vc.example.com.", typeTXT)
			u.WriteToUDP(wrongID, from)
			u.WriteToUDP(answerFor(other, 0x8180, txtRecord([]byte{0xc0, 0x0c}, "wrong question")), from)
			if strings.Contains(string(q), "big") {
				u.WriteToUDP(answerFor(q, 0x8380), from) // TC=1
			} else {
				u.WriteToUDP(answerFor(q, 0x8180, txtRecord([]byte{0xc0, 0x0c}, "udp")), from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			var n [2]byte
			io.ReadFull(c, n[:])
			q := make([]byte, binary.BigEndian.Uint16(n[:]))
			if _, err := io.ReadFull(c, q); err == nil {
				a := answerFor(q, 0x8180, txtRecord([]byte{0xc0, 0x0c}, "tcp"))
				c.Write(append([]byte{byte(len(a) >> 8), byte(len(a))}, a...))
			}
			c.Close()
		}
	}()
	r := &resolver{servers: []string{u.LocalAddr().String()}, timeout: 5 * time.Second, attempts: 1}
	for name, want := range map[string]string{"small.vc.example.com.": "udp", "big.vc.example.com.": "tcp"} {
		txt, err := r.queryTXT(context.Background(), name)
		if err != nil || len(txt) != 1 || string(txt[0][0]) != want {
			t.Errorf("%s: %q %v, want %s", name, txt, err, want)
		}
	}
	// A cancelled context ends the wait at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.queryTXT(ctx, "small.vc.example.com."); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// PROTOCOL §19: zones of up to 70 characters fit a short version's name,
// up to 41 a long one's; New refuses what could never be sent.
func TestNameBudget(t *testing.T) {
	zone := func(n int) string { return strings.Repeat("a", n-len(".example")) + ".example" }
	for _, c := range []struct {
		zone    string
		version string
		ok      bool
	}{
		{zone(70), "2.4.1", true}, {zone(71), "2.4.1", false},
		{zone(41), "1.2.3-beta.1+exp.sha.5114f85", true}, {zone(42), "1.2.3-beta.1+exp.sha.5114f85", false},
	} {
		_, err := New(Config{Zone: c.zone, Key: PublicKey{ID: 1, Key: make([]byte, 32)}, Version: c.version,
			Anonymous: true, Servers: []string{"127.0.0.1"}, StatePath: "unused"})
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrConfig)) {
			t.Errorf("zone of %d characters, version %s: %v", len(c.zone), c.version, err)
		}
	}
}
