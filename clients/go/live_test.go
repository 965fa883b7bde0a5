package vcheckd

// The client against a real vcheckd: each report is recorded once, the
// status equals `vcheckd check`'s, a truncated answer is retried over TCP,
// the opt-outs hold, and tampered, expired, replayed and rolled-back
// policies are refused.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func newLiveClient(t *testing.T, z *zoneDir, via, version, state string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Zone: liveZone, Key: z.key, Version: version, Anonymous: true,
		Servers: []string{via}, Timeout: 3 * time.Second, StatePath: state,
		Getenv: func(string) string { return "" },
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cliCheck is `vcheckd check --json` for the version, with its own state.
func cliCheck(t *testing.T, bin string, z *zoneDir, server, version string) (status int, message string) {
	t.Helper()
	out := run(t, z.dir, bin, "check", "--server", server, "--zone", liveZone, "--key", z.pubPath,
		"--version", version, "--cluster-id", "cli-cluster", "--node-id", "cli-node",
		"--state", filepath.Join(t.TempDir(), "state.json"), "--json")
	var v struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("vcheckd check --json: %v\n%s", err, out)
	}
	return v.Status, v.Message
}

func TestLiveReportsAndStatus(t *testing.T) {
	bin := vcheckdBin(t)
	lookPath(t, "sqlite3", "sqlite3")
	z := newZoneDir(t, bin, 2026112301, nil)
	srv := startServer(t, bin, z, "")
	px := startProxy(t, srv.addr)
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "state", "client-state.json")

	// A first check asks for the policy, then sends the report.
	named := newLiveClient(t, z, px.addr, "2.3.0", state, func(c *Config) {
		c.Anonymous, c.ClusterID, c.NodeID = false, "3f2b8c1e-9d4a-4e6b-8f0c-5a7d2e1b9c34", "node-1"
	})
	first, err := named.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Queries != 2 || first.Status != StatusUpgradeRequired || first.Policy.Serial != 2026112301 {
		t.Errorf("first check: %+v", first)
	}
	reports := map[string]string{first.ReportID: "2.3.0"}

	// Every version: the status and message equal `vcheckd check`'s; the
	// kept policy saves the policy query.
	for _, version := range []string{"2.3.0", "2.4.1", "2.3.1", "2.4.0", "2.2.0", "2.4.2", "2.5.0-rc.1", "2.4.1+build.7"} {
		c := newLiveClient(t, z, px.addr, version, state, nil)
		res, err := c.Check(ctx)
		if err != nil {
			t.Fatalf("%s: %v", version, err)
		}
		status, message := cliCheck(t, bin, z, srv.addr, version)
		if int(res.Status) != status || res.Message != message {
			t.Errorf("%s: Go %d %q, vcheckd check %d %q", version, res.Status, res.Message, status, message)
		}
		if res.Queries != 1 {
			t.Errorf("%s: %d queries, the kept policy should have saved one", version, res.Queries)
		}
		reports[res.ReportID] = version
	}

	// DISABLE_TELEMETRY: no identity. DISABLE_VERSION_CHECK: nothing sent.
	anon := newLiveClient(t, z, px.addr, "2.4.1", state, func(c *Config) {
		c.Anonymous, c.ClusterID, c.NodeID = false, "c", "n"
		c.Getenv = func(k string) string { return map[string]string{"DISABLE_TELEMETRY": "1"}[k] }
	})
	res, err := anon.Check(ctx)
	if err != nil || !res.Anonymous {
		t.Fatalf("DISABLE_TELEMETRY: %+v %v", res, err)
	}
	anonID := res.ReportID
	reports[anonID] = "2.4.1"
	before := px.get().queries
	off := newLiveClient(t, z, px.addr, "2.4.1", state, func(c *Config) {
		c.Getenv = func(k string) string { return map[string]string{"DISABLE_VERSION_CHECK": "yes"}[k] }
	})
	if _, err := off.Check(ctx); !errors.Is(err, ErrDisabled) {
		t.Errorf("DISABLE_VERSION_CHECK: %v", err)
	}
	if p, err := off.DryRun(ctx); err != nil || !p.Disabled {
		t.Errorf("DISABLE_VERSION_CHECK dry run: %+v %v", p, err)
	}
	if n := px.get().queries; n != before {
		t.Errorf("DISABLE_VERSION_CHECK sent %d queries", n-before)
	}

	// The dry run asks for the policy only: its report is never recorded.
	preview, err := named.DryRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if preview.Status != StatusUpgradeRequired || preview.PolicyName != "5._policy.vc.example.com." ||
		len(preview.Plaintext) != 2*smallPlaintext || preview.Cluster == hex.EncodeToString(make([]byte, 16)) {
		t.Errorf("dry run: %+v", preview)
	}
	if px.get().queries != before+1 {
		t.Errorf("the dry run asked %d questions, 1 expected", px.get().queries-before)
	}

	// A truncated answer: the same question again over TCP; the frame
	// arrived twice (UDP, then TCP), the server keeps it once: the TCP
	// copy is an exact repeat, answered and not taken again
	// (docs/PROTOCOL.md §20, step 3), so no duplicate is counted either.
	px.set(func(p *proxy) { p.mode = truncate })
	tc, err := newLiveClient(t, z, px.addr, "2.4.0", state, nil).Check(ctx)
	if err != nil {
		t.Fatalf("after TC=1: %v", err)
	}
	if px.get().tcpConns != 1 {
		t.Errorf("%d TCP connections after TC=1", px.get().tcpConns)
	}
	reports[tc.ReportID] = "2.4.0"
	px.set(func(p *proxy) { p.mode = honest })

	srv.stop(t)
	recorded := rows(t, z)
	for id, version := range reports {
		r := recorded[id]
		if len(r) != 1 || r[0].Version != version {
			t.Errorf("report %s (%s): recorded %+v", id, version, r)
		}
	}
	if r := recorded[first.ReportID]; len(r) == 1 {
		secret := clusterSecret(liveZone, "3f2b8c1e-9d4a-4e6b-8f0c-5a7d2e1b9c34")
		cluster, _ := anonymizedIDs(secret, "node-1")
		if r[0].Cluster != hex.EncodeToString(cluster[:]) || r[0].Anonymous != 0 {
			t.Errorf("the named report's cluster: %+v", r[0])
		}
	}
	if r := recorded[anonID]; len(r) == 1 && r[0].Anonymous != 1 {
		t.Errorf("DISABLE_TELEMETRY's report carries an identity: %+v", r[0])
	}
	if r := recorded[tc.ReportID]; len(r) == 1 && r[0].Duplicates != 0 {
		t.Errorf("the truncated report: %+v (the TCP copy is an exact repeat, not kept: no duplicate)", r[0])
	}
	if r := recorded[preview.ReportID]; len(r) != 0 {
		t.Errorf("the dry run's report was recorded: %+v", r)
	}
}

func TestLiveRefusals(t *testing.T) {
	bin := vcheckdBin(t)
	z := newZoneDir(t, bin, 2026112301, nil)
	a := startServer(t, bin, z, "")
	px := startProxy(t, a.addr)
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "client-state.json")
	client := newLiveClient(t, z, px.addr, "2.3.1", state, nil)
	good, err := client.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	captured := px.get().last
	kept, _ := os.ReadFile(state)

	refused := func(what string, c *Client, want error) {
		t.Helper()
		res, err := c.Check(ctx)
		var perr *PolicyError
		var derr *DNSError
		switch {
		case !errors.Is(err, want):
			t.Errorf("%s: %+v, %v; want %v", what, res, err, want)
		case errors.As(err, &perr) && perr.Name == "":
			t.Errorf("%s: the error does not name the query: %v", what, err)
		case errors.As(err, &derr) && derr.Server != px.addr:
			t.Errorf("%s: the error does not name the server: %v", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
	for _, at := range []int{2, 40, len(good.Policy.Wire) - 70, len(good.Policy.Wire) - 1} {
		px.set(func(p *proxy) { p.mode, p.flipAt = flip, at })
		refused("a flipped bit", client, ErrSignature)
	}
	px.set(func(p *proxy) { p.mode, p.strings = replace, [][]byte{[]byte("v=spf1 -all")} })
	refused("no policy", client, ErrMissing)
	px.set(func(p *proxy) { p.mode = servfail })
	_, err = client.Check(ctx)
	var derr *DNSError
	if !errors.As(err, &derr) || !derr.HasRcode || derr.Rcode != RcodeServFail {
		t.Errorf("SERVFAIL: %v", err)
	}
	px.set(func(p *proxy) { p.mode = drop })
	refused("no answer", newLiveClient(t, z, px.addr, "2.3.1", state, func(c *Config) { c.Timeout = 200 * time.Millisecond }), ErrTimeout)

	// Expired: the captured answer, to a client whose clock is two days on.
	px.set(func(p *proxy) { p.mode, p.strings = replace, captured })
	later := newLiveClient(t, z, px.addr, "2.3.1", filepath.Join(t.TempDir(), "s.json"), func(c *Config) {
		c.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	})
	refused("expired", later, ErrExpired)

	// Every refusal left the state as it was.
	if now, _ := os.ReadFile(state); string(now) != string(kept) {
		t.Errorf("a refused policy changed the state:\n%s\n%s", kept, now)
	}

	// Rollback: another name server of the zone (same key) with a lower SOA
	// serial than the client accepted.
	c := startServer(t, bin, newZoneDir(t, bin, 2026112300, z), "")
	px.set(func(p *proxy) { p.mode, p.upstream = honest, c.addr })
	refused("a lower serial", client, ErrRollback)

	// Replayed: a name server three hours ahead signs a newer policy; the
	// client accepts it (issued in the future is accepted), and then an
	// honest server's current one is two grid steps older.
	lookPath(t, "faketime", "faketime")
	b := startServer(t, bin, newZoneDir(t, bin, 2026112301, z), "+3h")
	px.set(func(p *proxy) { p.upstream = b.addr })
	ahead, err := client.Check(ctx)
	if err != nil {
		t.Fatalf("a policy from a server three hours ahead: %v\n%s", err, b.logText())
	}
	if ahead.Policy.Issued < good.Policy.Issued+3*3600 {
		t.Fatalf("the server under faketime signed issued %d, the honest one %d", ahead.Policy.Issued, good.Policy.Issued)
	}
	px.set(func(p *proxy) { p.upstream = a.addr })
	refused("an older policy after a newer one", client, ErrReplayed)
}

// A server that cannot be reached is a DNS failure naming the server.
func TestUnreachableServer(t *testing.T) {
	c, err := New(Config{
		Zone: liveZone, Key: PublicKey{ID: 1, Key: make([]byte, 32)}, Version: "1.0.0", Anonymous: true,
		Servers: []string{"127.0.0.1:1"}, Timeout: 500 * time.Millisecond, StatePath: filepath.Join(t.TempDir(), "s.json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(context.Background())
	var derr *DNSError
	if !errors.As(err, &derr) || derr.Server != "127.0.0.1:1" || derr.HasRcode {
		t.Fatalf("%v", err)
	}
}
