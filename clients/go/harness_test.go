package vcheckd

// A real vcheckd for the live tests: `vcheckd keygen`, a zone file, a
// config, `vcheckd serve --config` on an ephemeral loopback port; and a
// tampering proxy (UDP and TCP on one port) between the client and it.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const liveZone = "vc.example.com"

const liveReleases = `versions = ["2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
end_of_life = ["2.2"]
[[zone.releases.advisory]]
id = "CVE-2026-0001"
fixed = ["2.3.1", "2.4.1"]
`

// need skips the test when a component is missing, or fails it in CI
// (VCHECKD_INTEROP_REQUIRE=1), naming the component and how to get it.
func need(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("VCHECKD_INTEROP_REQUIRE") == "1" {
		t.Fatalf("%s (VCHECKD_INTEROP_REQUIRE=1)", what)
	}
	t.Skipf("skipped: %s", what)
}

// vcheckdBin is VCHECKD_BIN, else the worktree's target/debug/vcheckd.
func vcheckdBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("VCHECKD_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("VCHECKD_BIN=%s: %v", b, err)
		}
		return b
	}
	b, _ := filepath.Abs("../../target/debug/vcheckd")
	if _, err := os.Stat(b); err != nil {
		need(t, "no vcheckd binary at "+b+": run `cargo build --bin vcheckd` at the repository's root, or set VCHECKD_BIN")
	}
	return b
}

func lookPath(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		need(t, name+" is not installed (apt-get install -y "+pkg+")")
	}
	return p
}

// zoneDir is a server's folder: config.toml, zone.txt (SOA serial), the
// key files, and the database vcheckd.sqlite once it runs.
type zoneDir struct {
	dir     string
	pubPath string
	key     PublicKey
}

// newZoneDir makes a key with `vcheckd keygen`, or copies the private key
// of from (another server of the same zone) when given.
func newZoneDir(t *testing.T, bin string, serial uint32, from *zoneDir) *zoneDir {
	t.Helper()
	dir := t.TempDir()
	z := &zoneDir{dir: dir, pubPath: filepath.Join(dir, "v2.public")}
	if from == nil {
		run(t, dir, bin, "keygen", "--id", "5", "--private", "v2.private", "--public", "v2.public")
	} else {
		for _, f := range []string{"v2.private", "v2.public"} {
			b, err := os.ReadFile(filepath.Join(from.dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	var err error
	if z.key, err = ReadPublicKeyFile(z.pubPath); err != nil {
		t.Fatal(err)
	}
	zone := fmt.Sprintf("$ORIGIN %[1]s.\n$TTL 300\n@ IN SOA ns1.%[1]s. hostmaster.example.com. %[2]d 3600 600 1209600 60\n@ IN NS ns1.%[1]s.\nns1 IN A 127.0.0.1\n", liveZone, serial)
	config := fmt.Sprintf(`[server]
listen = ["127.0.0.1:0"]
database = "vcheckd.sqlite"
# Every query comes from one loopback address.
rrl_rate = 0

[[zone]]
name = "%s"
file = "zone.txt"
private_keys = ["v2.private"]
accept_v1 = false
answer_ttl = 60

[zone.releases]
%s`, liveZone, liveReleases)
	for name, text := range map[string]string{"zone.txt": zone, "config.toml": config} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return z
}

func run(t *testing.T, dir, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return out
}

type server struct {
	cmd *exec.Cmd
	// faketime: the command is faketime, which dies of the SIGTERM it
	// passes on to the server.
	faketime bool
	addr     string
	mu       sync.Mutex
	log      bytes.Buffer
	done     chan struct{}
}

var listening = regexp.MustCompile(`listening on UDP and TCP addr=(127\.0\.0\.1:\d+)`)

// startServer runs `vcheckd serve --config config.toml` in the zone's
// folder (under `faketime OFFSET` when offset is set) and waits for its
// address.
func startServer(t *testing.T, bin string, z *zoneDir, offset string) *server {
	t.Helper()
	args := []string{"serve", "--config", "config.toml"}
	name := bin
	if offset != "" {
		name = lookPath(t, "faketime", "faketime")
		args = append([]string{"-f", offset, bin}, args...)
	}
	s := &server{cmd: exec.Command(name, args...), done: make(chan struct{}), faketime: offset != ""}
	s.cmd.Dir = z.dir
	// Its own process group: faketime runs the server as its child, and a
	// signal must reach both.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// libfaketime's fake monotonic clock stalls the server's shutdown; the
	// wall clock is what signs the policy.
	s.cmd.Env = append(os.Environ(), "RUST_LOG=info", "NO_COLOR=1", "FAKETIME_DONT_FAKE_MONOTONIC=1")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.addr = <-addr:
	case <-s.done:
		t.Fatalf("vcheckd serve exited before listening:\n%s", s.logText())
	case <-time.After(60 * time.Second):
		t.Fatalf("vcheckd serve did not listen within 60 s:\n%s", s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// stop ends the server with SIGTERM (it records what it received before
// exiting) and waits for it.
func (s *server) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Errorf("vcheckd serve did not stop within 30 s of SIGTERM:\n%s", s.logText())
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
	if err := s.cmd.Wait(); err != nil && !s.faketime {
		t.Errorf("vcheckd serve: %v\n%s", err, s.logText())
	}
}

// row is one report as the server recorded it.
type row struct {
	ReportID   string `json:"id"`
	Version    string `json:"version"`
	Duplicates int    `json:"duplicates"`
	Cluster    string `json:"cluster"`
	Anonymous  int    `json:"anonymous"`
}

// rows reads the reports table with sqlite3 (after the server stopped).
func rows(t *testing.T, z *zoneDir) map[string][]row {
	t.Helper()
	bin := lookPath(t, "sqlite3", "sqlite3")
	out := run(t, z.dir, bin, "-json", "vcheckd.sqlite",
		"SELECT lower(hex(report_id)) AS id, version, duplicates, lower(hex(cluster)) AS cluster, cluster IS NULL AS anonymous FROM reports")
	var list []row
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("sqlite3 -json: %v\n%s", err, out)
		}
	}
	byID := map[string][]row{}
	for _, r := range list {
		byID[r.ReportID] = append(byID[r.ReportID], r)
	}
	return byID
}

type proxyMode int

const (
	honest   proxyMode = iota
	flip               // flip one bit of the policy's wire form at flipAt
	replace            // answer these TXT strings instead
	truncate           // answer TC=1 without records (the client retries over TCP)
	servfail           // answer SERVFAIL
	drop               // answer nothing
)

// proxy forwards DNS between the client and a vcheckd and rewrites UDP
// answers as its mode says; TCP is passed through unchanged.
type proxy struct {
	udp  *net.UDPConn
	tcp  *net.TCPListener
	addr string

	mu       sync.Mutex
	upstream string
	mode     proxyMode
	flipAt   int
	strings  [][]byte
	last     [][]byte // the TXT strings of the last policy passed through
	queries  int      // UDP queries received
	tcpConns int
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	p := &proxy{upstream: upstream}
	for i := 0; ; i++ {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			u.Close()
			if i < 50 {
				continue // that port is taken for TCP: another one
			}
			t.Fatal(err)
		}
		p.udp, p.tcp, p.addr = u, l, u.LocalAddr().String()
		break
	}
	t.Cleanup(func() { p.udp.Close(); p.tcp.Close() })
	go p.serveUDP()
	go p.serveTCP()
	return p
}

func (p *proxy) set(f func(p *proxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *proxy) get() proxy {
	p.mu.Lock()
	defer p.mu.Unlock()
	return proxy{upstream: p.upstream, mode: p.mode, flipAt: p.flipAt, strings: p.strings, last: p.last, queries: p.queries, tcpConns: p.tcpConns}
}

func (p *proxy) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, client, err := p.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		query := append([]byte(nil), buf[:n]...)
		p.mu.Lock()
		p.queries++
		mode, upstream, at, strs := p.mode, p.upstream, p.flipAt, p.strings
		p.mu.Unlock()
		go func() {
			if mode == drop {
				return
			}
			if mode == servfail {
				_, _ = p.udp.WriteToUDP(reply(query, 2, false, nil), client)
				return
			}
			answer := forwardUDP(upstream, query)
			if answer == nil {
				return
			}
			resp, err := parseResponse(answer)
			if err != nil {
				return
			}
			var policy [][]byte
			for _, rec := range resp.txt {
				if _, ok := PolicyFromTXT(rec); ok {
					policy = rec
				}
			}
			if policy != nil {
				p.mu.Lock()
				p.last = policy
				p.mu.Unlock()
			}
			switch {
			case mode == truncate:
				answer = reply(query, 0, true, nil)
			case mode == replace:
				answer = reply(query, 0, false, strs)
			case mode == flip && policy != nil:
				wire, _ := PolicyFromTXT(policy)
				wire[at%len(wire)] ^= 0x10
				answer = reply(query, 0, false, [][]byte{[]byte(policyMarker), wire})
			}
			_, _ = p.udp.WriteToUDP(answer, client)
		}()
	}
}

func forwardUDP(upstream string, query []byte) []byte {
	c, err := net.Dial("udp", upstream)
	if err != nil {
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(query); err != nil {
		return nil
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// reply answers query with rcode, the TC flag, and one TXT record of these
// strings owned by the question name (none if strs is nil).
func reply(query []byte, rcode int, tc bool, strs [][]byte) []byte {
	_, qend, err := readName(query, headerSize)
	if err != nil {
		return nil
	}
	qend += 4
	m := append([]byte(nil), query[:qend]...)
	flags := uint16(0x8400) | binary.BigEndian.Uint16(query[2:])&0x0100 | uint16(rcode)
	if tc {
		flags |= 0x0200
	}
	binary.BigEndian.PutUint16(m[2:], flags)
	binary.BigEndian.PutUint16(m[6:], 0)
	binary.BigEndian.PutUint16(m[8:], 0)
	binary.BigEndian.PutUint16(m[10:], 0)
	if strs != nil {
		binary.BigEndian.PutUint16(m[6:], 1)
		var rdata []byte
		for _, s := range strs {
			rdata = append(rdata, byte(len(s)))
			rdata = append(rdata, s...)
		}
		m = append(m, 0xc0, 0x0c, 0, typeTXT, 0, classIN, 0, 0, 0, 60, byte(len(rdata)>>8), byte(len(rdata)))
		m = append(m, rdata...)
	}
	return m
}

func (p *proxy) serveTCP() {
	for {
		c, err := p.tcp.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.tcpConns++
		upstream := p.upstream
		p.mu.Unlock()
		go func() {
			defer c.Close()
			u, err := net.DialTimeout("tcp", upstream, 3*time.Second)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { _, _ = io.Copy(u, c) }()
			_, _ = io.Copy(c, u)
		}()
	}
}
