package vcheckd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestJitterBounds(t *testing.T) {
	var lo, hi time.Duration = time.Hour, 0
	for i := 0; i < 2000; i++ {
		d := uniform(300 * time.Second)
		if d < 0 || d > 300*time.Second {
			t.Fatalf("startup delay %s outside [0, 300 s]", d)
		}
		if d < lo {
			lo = d
		}
		if d > hi {
			hi = d
		}
		j := jitter(86400 * time.Second)
		if j < 77760*time.Second || j > 95040*time.Second {
			t.Fatalf("interval %s outside 86400 s ± 10%%", j)
		}
	}
	// 2000 uniform draws: each tenth of the range is hit (else the
	// source is not uniform, or not random).
	if lo > 30*time.Second || hi < 270*time.Second {
		t.Errorf("2000 startup delays all in [%s, %s]", lo, hi)
	}
	if uniform(0) != 0 {
		t.Error("no startup jitter must mean no delay")
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{zone: "vc.example.com"}
	for _, tc := range []struct {
		interval time.Duration
		want     []time.Duration // after failures 1, 2, ...
	}{
		{86400 * time.Second, []time.Duration{60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600}},
		{3600 * time.Second, []time.Duration{60, 120, 240, 480, 960, 1920, 3600, 3600}},
	} {
		a, err := NewAgent(c, AgentConfig{Interval: tc.interval})
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range tc.want {
			if got := a.backoff(i + 1); got != w*time.Second {
				t.Errorf("interval %s, failure %d: %s, want %d s", tc.interval, i+1, got, w)
			}
		}
	}
	if _, err := NewAgent(c, AgentConfig{TextFile: "/tmp/status.txt"}); err == nil {
		t.Error("a textfile that node_exporter would not read was accepted")
	}
}

// agentRun runs an agent until the test ends, collecting its updates and
// log lines.
type agentRun struct {
	agent   *Agent
	updates chan AgentStatus
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	logs    []string
	status  string
	prom    string
}

func runAgent(t *testing.T, c *Client, cfg AgentConfig) *agentRun {
	t.Helper()
	dir := t.TempDir()
	r := &agentRun{updates: make(chan AgentStatus, 100), done: make(chan error, 1),
		status: filepath.Join(dir, "status.json"), prom: filepath.Join(dir, "vcheckd.prom")}
	cfg.StatusFile, cfg.TextFile = r.status, r.prom
	cfg.Logger = func(level LogLevel, msg string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.logs = append(r.logs, level.String()+" "+msg)
	}
	cfg.OnUpdate = func(s AgentStatus) {
		select {
		case r.updates <- s:
		default: // a test that stopped reading
		}
	}
	a, err := NewAgent(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *agentRun) next(t *testing.T) AgentStatus {
	t.Helper()
	select {
	case s := <-r.updates:
		return s
	case <-time.After(60 * time.Second):
		t.Fatal("no agent update within 60 s")
	}
	return AgentStatus{}
}

// checkNow asks for a check and returns the status after it.
func (r *agentRun) checkNow(t *testing.T) AgentStatus {
	t.Helper()
	r.agent.CheckNow()
	return r.next(t)
}

func (r *agentRun) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return within 30 s of its context's end")
	}
}

func (r *agentRun) lines(level string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.logs {
		if strings.HasPrefix(l, level+" ") {
			out = append(out, l)
		}
	}
	return out
}

// statusFile reads the JSON status file and checks its keys (the contract's).
func (r *agentRun) statusFile(t *testing.T) map[string]interface{} {
	t.Helper()
	b, err := os.ReadFile(r.status)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]interface{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("status file: %v\n%s", err, b)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := "advisory_url anonymous checked_at consecutive_failures error last_status last_success latest message next_check policy_expires running status status_code zone"
	if strings.Join(keys, " ") != want {
		t.Errorf("status file keys:\n%s\nwant\n%s", strings.Join(keys, " "), want)
	}
	return m
}

// textfile reads the .prom file and checks it with promtool when present.
func (r *agentRun) textfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(r.prom)
	if err != nil {
		t.Fatal(err)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(string(b))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, b)
		}
	} else if os.Getenv("VCHECKD_INTEROP_REQUIRE") == "1" {
		t.Error("promtool is not installed (apt-get install -y prometheus) and VCHECKD_INTEROP_REQUIRE=1")
	}
	return string(b)
}

func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	// The file's times are whole seconds.
	if d < lo-time.Second || d > hi+time.Second {
		t.Errorf("%s: %s, outside [%s, %s]", what, d, lo, hi)
	}
}

// The agent with a real server that goes away and comes back. Checks are
// asked with CheckNow (as SIGHUP does), the schedule is read from
// next_check, and the client's clock is moved past the policy's expiry.
func TestAgentServerGoesAwayAndComesBack(t *testing.T) {
	bin := vcheckdBin(t)
	z := newZoneDir(t, bin, 2026112301, nil)
	srv := startServer(t, bin, z, "")
	px := startProxy(t, srv.addr)
	var offset atomic.Int64
	state := filepath.Join(t.TempDir(), "client-state.json")
	client := newLiveClient(t, z, px.addr, "2.3.0", state, func(c *Config) {
		c.Timeout = 300 * time.Millisecond
		c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	const interval, base = time.Hour, 10 * time.Minute
	start := time.Now()
	r := runAgent(t, client, AgentConfig{StartupJitter: time.Hour, Interval: interval, BackoffBase: base})

	s := r.next(t)
	if s.Status != StatusStale || s.LastStatus != nil || s.CheckedAt != nil {
		t.Errorf("before the first check: %+v", s)
	}
	within(t, "startup delay", s.NextCheck.Sub(start), 0, time.Hour)
	if prom := r.textfile(t); !strings.Contains(prom, `vcheckd_version_check_last_success_timestamp_seconds{zone="vc.example.com"} 0`+"\n") {
		t.Errorf("before any success the last success is 0:\n%s", prom)
	}

	s = r.checkNow(t)
	if s.Status != StatusUpgradeRequired || *s.LastStatus != StatusUpgradeRequired || *s.StatusCode != 3 ||
		s.ConsecutiveFailures != 0 || s.Error != nil || *s.Latest != "2.4.1" || s.Anonymous != true {
		t.Fatalf("after a check: %+v", s)
	}
	within(t, "interval", s.NextCheck.Sub(*s.CheckedAt), interval*9/10, interval*11/10)
	f := r.statusFile(t)
	if f["status"] != "upgrade-required" || f["status_code"] != 3.0 || f["message"] != "security fix CVE-2026-0001 in 2.3.1" || f["error"] != nil {
		t.Errorf("status file: %v", f)
	}
	prom := r.textfile(t)
	for _, line := range []string{
		`vcheckd_version_status{zone="vc.example.com",running="2.3.0",latest="2.4.1"} 3`,
		`vcheckd_version_check_state{zone="vc.example.com",state="ok"} 1`,
		`vcheckd_version_check_state{zone="vc.example.com",state="stale"} 0`,
		fmt.Sprintf(`vcheckd_version_check_last_success_timestamp_seconds{zone="vc.example.com"} %d`, s.LastSuccess.Unix()),
		`vcheckd_version_check_consecutive_failures{zone="vc.example.com"} 0`,
	} {
		if !strings.Contains(prom, line+"\n") {
			t.Errorf("textfile without %s:\n%s", line, prom)
		}
	}

	// The server goes away: the status stays (sticky), the retries back off.
	srv.stop(t)
	for i, want := range []time.Duration{base, 2 * base, 4 * base, interval, interval} {
		s = r.checkNow(t)
		if s.Status != StatusUpgradeRequired || s.ConsecutiveFailures != i+1 || s.Error == nil {
			t.Fatalf("failure %d: %+v", i+1, s)
		}
		within(t, fmt.Sprintf("backoff after failure %d", i+1), s.NextCheck.Sub(*s.CheckedAt), want*9/10, want*11/10)
	}
	if !strings.Contains(*s.Error, px.addr) {
		t.Errorf("the error does not name the name server: %s", *s.Error)
	}

	// Past the policy's expiry without a fresh one: stale, the last
	// verified status kept beside it.
	offset.Store(int64(72 * time.Hour))
	s = r.checkNow(t)
	if s.Status != StatusStale || *s.LastStatus != StatusUpgradeRequired || *s.StatusCode != 3 {
		t.Fatalf("after the policy expired: %+v", s)
	}
	prom = r.textfile(t)
	for _, line := range []string{`state="stale"} 1`, `state="ok"} 0`, `latest="2.4.1"} 3`, `consecutive_failures{zone="vc.example.com"} 6`} {
		if !strings.Contains(prom, line) {
			t.Errorf("stale textfile without %s:\n%s", line, prom)
		}
	}
	if f := r.statusFile(t); f["status"] != "stale" || f["last_status"] != "upgrade-required" {
		t.Errorf("stale status file: %v", f)
	}

	// The server comes back (a new process, the same zone and key).
	srv = startServer(t, bin, z, "")
	px.set(func(p *proxy) { p.upstream = srv.addr })
	offset.Store(0)
	s = r.checkNow(t)
	if s.Status != StatusUpgradeRequired || s.ConsecutiveFailures != 0 || s.Error != nil {
		t.Fatalf("after the server came back: %+v", s)
	}
	r.stop(t)
	if f := r.statusFile(t); f["next_check"] != nil {
		t.Errorf("after Run returned, next_check is %v", f["next_check"])
	}

	// One line per change of status, at warning for upgrade-required and
	// stale; one debug line per failure.
	changes := r.lines("warning")
	if len(changes) != 3 || !strings.Contains(changes[0], "upgrade-required") ||
		!strings.Contains(changes[1], "stale") || !strings.Contains(changes[2], "upgrade-required") {
		t.Errorf("warnings:\n%s", strings.Join(changes, "\n"))
	}
	if n := len(r.lines("debug")); n != 6 {
		t.Errorf("%d debug lines for 6 failures", n)
	}
	if n := len(r.lines("info")); n != 0 {
		t.Errorf("info lines: %v", r.lines("info"))
	}

	// A restarted agent starts from the kept policy's status.
	r2 := runAgent(t, client, AgentConfig{StartupJitter: time.Hour})
	if s := r2.next(t); s.Status != StatusUpgradeRequired || *s.LastStatus != StatusUpgradeRequired {
		t.Errorf("a restarted agent: %+v", s)
	}
}

// Without CheckNow: the startup delay and the interval run the checks.
func TestAgentSchedule(t *testing.T) {
	bin := vcheckdBin(t)
	z := newZoneDir(t, bin, 2026112301, nil)
	srv := startServer(t, bin, z, "")
	client := newLiveClient(t, z, srv.addr, "2.4.1", filepath.Join(t.TempDir(), "s.json"), func(c *Config) {
		c.Anonymous, c.ClusterID, c.NodeID = false, "c", "n"
		c.Getenv = func(k string) string { return map[string]string{"DISABLE_TELEMETRY": "true"}[k] }
	})
	r := runAgent(t, client, AgentConfig{StartupJitter: 200 * time.Millisecond, Interval: 300 * time.Millisecond})
	r.next(t) // at start
	for i := 0; i < 3; i++ {
		s := r.next(t)
		if s.Status != StatusUpToDate || s.CheckedAt == nil || s.Error != nil {
			t.Fatalf("check %d: %+v", i+1, s)
		}
	}
	if f := r.statusFile(t); f["anonymous"] != true || f["status"] != "up-to-date" {
		t.Errorf("DISABLE_TELEMETRY: %v", f)
	}
	if changes := r.lines("info"); len(changes) != 1 {
		t.Errorf("one line per change of status, not per check: %v", changes)
	}
}

func TestAgentDisabled(t *testing.T) {
	px := startProxy(t, "127.0.0.1:1")
	client, err := New(Config{
		Zone: liveZone, Key: PublicKey{ID: 5, Key: make([]byte, 32)}, Version: "2.4.1", ClusterID: "c", NodeID: "n",
		Servers: []string{px.addr}, StatePath: filepath.Join(t.TempDir(), "s.json"),
		Getenv: func(k string) string { return map[string]string{"DISABLE_VERSION_CHECK": "1"}[k] },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := runAgent(t, client, AgentConfig{StartupJitter: -1, Interval: 100 * time.Millisecond})
	s := r.next(t)
	if s.Status != StatusDisabled || s.StatusCode != nil || s.NextCheck != nil {
		t.Errorf("disabled: %+v", s)
	}
	r.agent.CheckNow()
	time.Sleep(300 * time.Millisecond) // several intervals: still nothing sent
	f := r.statusFile(t)
	if f["status"] != "disabled" || f["status_code"] != nil {
		t.Errorf("status file: %v", f)
	}
	prom := r.textfile(t)
	if !strings.Contains(prom, `state="disabled"} 1`) || strings.Contains(prom, "vcheckd_version_status{") {
		t.Errorf("textfile:\n%s", prom)
	}
	r.stop(t)
	if n := px.get().queries; n != 0 {
		t.Errorf("disabled, yet %d queries were sent", n)
	}
	if l := r.lines("info"); len(l) != 1 || !strings.Contains(l[0], "disabled") {
		t.Errorf("log: %v", r.logs)
	}
}

func TestOptOutValues(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "No": false, "OFF": false, "1": true, "yes": true, "true": true} {
		if optedOut(v) != want {
			t.Errorf("%q: opted out %v", v, !want)
		}
	}
}
