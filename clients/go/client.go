// Package vcheckd is the client of vcheckd's version check, protocol v2
// (docs/PROTOCOL.md §15-§21): it builds an encrypted, anonymized report,
// sends it as one DNS query for a name under the vendor's zone, verifies the
// zone's signed release policy in the answer, and computes the running
// version's status from it. Agent runs the same check periodically
// (docs/CLIENTS.md, "The agent contract").
//
// The opt-out contract: with DISABLE_VERSION_CHECK set (non-empty and not
// 0, false, no or off) nothing is ever sent; with DISABLE_TELEMETRY set the
// report carries no cluster or node identity.
package vcheckd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config describes one client. Zone, Key and Version are required, and
// either ClusterID and NodeID or Anonymous.
type Config struct {
	// Zone is the vendor's delegated zone, e.g. "vc.example.com" (an
	// internationalized zone in its xn-- form).
	Zone string
	// Key is the zone's public key (ParsePublicKey, ReadPublicKeyFile).
	Key PublicKey
	// Version is the running version, SemVer ("2.4.1", "2.5.0-rc.1+build.7").
	Version string
	// ClusterID and NodeID are the real ids, as the software knows them;
	// only keyed hashes of them are sent (PROTOCOL §17). Use a random id made
	// at installation for the cluster, not a guessable name.
	ClusterID, NodeID string
	// Anonymous sends no identity (as DISABLE_TELEMETRY does).
	Anonymous bool
	// Servers are the name servers to ask, "HOST" or "HOST:PORT"; default:
	// VCHECKD_SERVER (as for `vcheckd check`: one, or several separated by
	// commas), else those of /etc/resolv.conf (ResolvConf).
	Servers []string
	// Timeout is how long to wait for each name server's answer (default:
	// resolv.conf's timeout option, else 5 s).
	Timeout time.Duration
	// ResolvConf is the resolver configuration read when Servers is empty
	// (default /etc/resolv.conf).
	ResolvConf string
	// StatePath is the client state file (PROTOCOL §21); default
	// VCHECKD_STATE, else $STATE_DIRECTORY/client-state.json, else
	// $XDG_STATE_HOME/vcheckd/client-state.json, else
	// ~/.local/state/vcheckd/client-state.json. New fails if none is set.
	StatePath string
	// EffortBudget bounds the time spent on the effort proof (default
	// 250 ms); the best proof found is sent when it runs out.
	EffortBudget time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Getenv reads the environment (default os.Getenv): the opt-out
	// variables and the state path's.
	Getenv func(string) string
}

// Client checks one zone for one running version. Its methods are safe for
// concurrent use; checks run one at a time.
type Client struct {
	zone      string
	key       PublicKey
	version   Version
	clusterID string
	nodeID    string
	anonymous bool
	disabled  bool
	budget    time.Duration
	state     string
	res       *resolver
	now       func() time.Time

	mu sync.Mutex
	id *identity // computed on first use (Argon2id, 64 MiB)
}

// New validates the configuration and reads the environment's opt-outs; it
// sends nothing.
func New(cfg Config) (*Client, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	c := &Client{
		key:       cfg.Key,
		clusterID: cfg.ClusterID,
		nodeID:    cfg.NodeID,
		anonymous: cfg.Anonymous || optedOut(getenv("DISABLE_TELEMETRY")),
		disabled:  optedOut(getenv("DISABLE_VERSION_CHECK")),
		budget:    cfg.EffortBudget,
		state:     cfg.StatePath,
		now:       cfg.Now,
	}
	var err error
	if c.zone, err = canonicalZone(cfg.Zone); err != nil {
		return nil, err
	}
	if len(c.key.Key) == 0 {
		return nil, fmt.Errorf("%w: no zone public key (Config.Key: the vck2-public token from vcheckd keygen --public)", ErrConfig)
	}
	if c.version, err = ParseVersion(cfg.Version); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if len(cfg.Version) > maxVersionLength {
		return nil, fmt.Errorf("%w: version %q is longer than %d bytes", ErrConfig, cfg.Version, maxVersionLength)
	}
	// The name's length depends only on the version's and the zone's
	// (PROTOCOL §19): refuse now what could never be sent.
	frameLen := 4 + 32 + smallPlaintext + 16 + proofSize
	if len(cfg.Version) > maxSmallVersion {
		frameLen += largePlaintext - smallPlaintext
	}
	if _, _, err := queryName(make([]byte, frameLen), c.zone); err != nil {
		return nil, err
	}
	if !c.anonymous && (c.clusterID == "" || c.nodeID == "") {
		return nil, fmt.Errorf("%w: give ClusterID and NodeID, or set Anonymous", ErrConfig)
	}
	if c.budget <= 0 {
		c.budget = 250 * time.Millisecond
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.state == "" {
		c.state = defaultStatePath(getenv)
	}
	if c.state == "" {
		return nil, fmt.Errorf("%w: no place for the client state: set Config.StatePath, VCHECKD_STATE, STATE_DIRECTORY, XDG_STATE_HOME or HOME", ErrConfig)
	}
	servers := cfg.Servers
	if len(servers) == 0 && getenv("VCHECKD_SERVER") != "" {
		servers = strings.Split(getenv("VCHECKD_SERVER"), ",")
	}
	if len(servers) > 0 {
		c.res = &resolver{timeout: 5 * time.Second, attempts: 1}
		for _, s := range servers {
			s = strings.TrimSpace(s)
			c.res.servers = append(c.res.servers, serverAddress(s))
		}
	} else {
		path := cfg.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		if c.res, err = systemResolver(path); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout > 0 {
		c.res.timeout = cfg.Timeout
	}
	return c, nil
}

// optedOut: set, non-empty, and not 0, false, no or off (any case).
func optedOut(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

// canonicalZone is the zone's canonical form (PROTOCOL §5): ASCII, lower
// case, no trailing dot.
func canonicalZone(zone string) (string, error) {
	z := strings.ToLower(strings.TrimSuffix(zone, "."))
	if z == "" {
		return "", fmt.Errorf("%w: no zone", ErrConfig)
	}
	for _, label := range strings.Split(z, ".") {
		if label == "" || len(label) > maxLabelLength {
			return "", fmt.Errorf("%w: zone %q has an empty or too long label", ErrConfig, zone)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%w: zone %q: use letters, digits and '-' (an internationalized zone in its xn-- form)", ErrConfig, zone)
			}
		}
	}
	return z, nil
}

// Zone is the zone in canonical form.
func (c *Client) Zone() string { return c.zone }

// Version is the running version.
func (c *Client) Version() Version { return c.version }

// Disabled reports whether DISABLE_VERSION_CHECK was set when the client
// was made: then nothing is ever sent.
func (c *Client) Disabled() bool { return c.disabled }

// Anonymous reports whether reports carry no identity.
func (c *Client) Anonymous() bool { return c.anonymous }

// PolicyName is the name where the zone's policy is served without a
// report: "<key id>._policy.<zone>.".
func (c *Client) PolicyName() string {
	return strconv.Itoa(int(c.key.ID)) + "._policy." + c.zone + "."
}

// Result is a check's outcome.
type Result struct {
	Status Status
	// Message is what to show: "2.4.1 is available", "security fix
	// CVE-2026-0001 in 2.3.1: https://...".
	Message string
	// Latest is the newest release.
	Latest Release
	// AdvisoryURL is the advisory's URL when an advisory gave the status.
	AdvisoryURL string
	// Policy is the verified policy the status comes from.
	Policy *Policy
	// Name is the report's query name; ReportID its id (hex), the same on
	// every name server; Effort the proof's effort in bits.
	Name     string
	ReportID string
	Effort   int
	// Queries is the number of DNS questions asked (1; 2 when the policy
	// had to be fetched first or the report sealed again).
	Queries   int
	Anonymous bool
}

// Check sends one report and returns the status the zone's verified policy
// gives the running version. Errors: ErrDisabled, a *DNSError (rcode or
// ErrTimeout), a *PolicyError (ErrSignature, ErrExpired, ...), ErrState.
func (c *Client) Check(ctx context.Context) (*Result, error) {
	if c.disabled {
		return nil, ErrDisabled
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := loadState(c.state)
	if err != nil {
		return nil, err
	}
	entry := st.entry(c.zone, c.key.ID)
	res := &Result{Anonymous: c.anonymous}
	changed := false
	// Save what was accepted even when a later step fails: a lost state
	// would let a replayed policy in next time.
	save := func(err error) error {
		if !changed {
			return err
		}
		if serr := saveState(c.state, st); serr != nil && err == nil {
			return serr
		}
		return err
	}
	accept := func(p *Policy) {
		entry.accept(p)
		changed = true
	}

	now := c.unixNow()
	pol := entry.kept(c.zone, c.key)
	if pol == nil || !epochAccepted(pol.Epoch, now) {
		if pol, err = c.fetchPolicy(ctx, entry.seen(), res); err != nil {
			return nil, save(err)
		}
		accept(pol)
	}
	id, err := c.identity()
	if err != nil {
		return nil, err
	}
	pt, err := buildPlaintext(now, id, c.version.String())
	if err != nil {
		return nil, err
	}
	f, answer, err := c.send(ctx, pt, pol, entry.seen(), res)
	if err != nil {
		return nil, save(err)
	}
	accept(answer)
	if !epochAccepted(pol.Epoch, answer.Issued) {
		// The kept key was too old for the server: the report was not
		// recorded. Seal it again to the answer's key.
		if f, answer, err = c.send(ctx, pt, answer, entry.seen(), res); err != nil {
			return nil, save(err)
		}
		accept(answer)
	}
	res.Status, res.Message, res.AdvisoryURL = answer.Evaluate(c.version)
	res.Latest, res.Policy = answer.Latest, answer
	res.ReportID, res.Effort = hex.EncodeToString(f.reportID), f.effort
	if err := save(nil); err != nil {
		return nil, err
	}
	return res, nil
}

func (c *Client) unixNow() uint64 {
	t := c.now().Unix()
	if t < 0 {
		return 0
	}
	return uint64(t)
}

// epochAccepted: e is epoch(t) - 1, epoch(t) or epoch(t) + 1 (PROTOCOL §16).
func epochAccepted(e uint16, t uint64) bool {
	cur := int64(t / epochSecs)
	return int64(e) >= cur-1 && int64(e) <= cur+1
}

// fetchPolicy asks TXT for the policy name and verifies the answer.
func (c *Client) fetchPolicy(ctx context.Context, seen Seen, res *Result) (*Policy, error) {
	name := c.PolicyName()
	res.Queries++
	txt, err := c.res.queryTXT(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("fetching the zone's policy: %w", err)
	}
	return c.verify(txt, name, seen)
}

func (c *Client) verify(txt [][][]byte, name string, seen Seen) (*Policy, error) {
	p, err := VerifyTXT(txt, c.zone, c.key, seen, c.unixNow())
	if perr, ok := err.(*PolicyError); ok {
		perr.Name = name
	}
	return p, err
}

// seal builds the frame for pt under the policy's key and effort.
func (c *Client) seal(ctx context.Context, pt []byte, pol *Policy) (*frame, string, error) {
	ikm := make([]byte, 32)
	if _, err := rand.Read(ikm); err != nil {
		return nil, "", fmt.Errorf("vcheckd: the system's random source: %w", err)
	}
	f, err := sealReport(c.zone, c.key.ID, pol.Epoch, pol.SealKey[:], ikm, pt)
	if err != nil {
		return nil, "", &PolicyError{Reason: ErrMalformed, Detail: err.Error()}
	}
	f.searchProof(ctx, int(pol.Effort), c.budget)
	_, name, err := queryName(f.bytes, c.zone)
	if err != nil {
		return nil, "", err
	}
	return f, name, nil
}

// send seals, asks TXT for the report's name and verifies the answer.
func (c *Client) send(ctx context.Context, pt []byte, pol *Policy, seen Seen, res *Result) (*frame, *Policy, error) {
	f, name, err := c.seal(ctx, pt, pol)
	if err != nil {
		return nil, nil, err
	}
	res.Name = name
	res.Queries++
	txt, err := c.res.queryTXT(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("sending the report: %w", err)
	}
	answer, err := c.verify(txt, name, seen)
	if err != nil {
		return nil, nil, err
	}
	return f, answer, nil
}

// identity is nil when anonymous; else the anonymized ids, computed once.
func (c *Client) identity() (*identity, error) {
	if c.anonymous {
		return nil, nil
	}
	if c.id == nil {
		cl, n := anonymizedIDs(clusterSecret(c.zone, c.clusterID), c.nodeID)
		c.id = &identity{cluster: cl, node: n}
	}
	return c.id, nil
}

// Preview is what a check would send, from DryRun.
type Preview struct {
	// Disabled: DISABLE_VERSION_CHECK is set; nothing would be sent and the
	// other fields are empty.
	Disabled bool
	Zone     string
	Version  string
	// Anonymous: no identity (Cluster and Node are zero).
	Anonymous bool
	// Cluster and Node are the anonymized ids (hex) the report would carry.
	Cluster, Node string
	Timestamp     uint64
	// Plaintext is the report before sealing (hex).
	Plaintext string
	// Name is a report name as it would be asked (sealed with a fresh key:
	// each report's name differs); ReportID and Effort go with it.
	Name     string
	ReportID string
	Effort   int
	// PolicyName was asked for the zone's policy; Policy is the verified
	// policy and Status and Message what it says.
	PolicyName string
	Policy     *Policy
	Status     Status
	Message    string
}

// DryRun shows what Check would send, and sends no report: it asks only for
// the zone's policy (PolicyName), verifies it against the kept state
// (without saving it) and builds the report name from it.
func (c *Client) DryRun(ctx context.Context) (*Preview, error) {
	if c.disabled {
		return &Preview{Disabled: true, Zone: c.zone, Version: c.version.String()}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := loadState(c.state)
	if err != nil {
		return nil, err
	}
	pol, err := c.fetchPolicy(ctx, st.entry(c.zone, c.key.ID).seen(), &Result{})
	if err != nil {
		return nil, err
	}
	id, err := c.identity()
	if err != nil {
		return nil, err
	}
	now := c.unixNow()
	pt, err := buildPlaintext(now, id, c.version.String())
	if err != nil {
		return nil, err
	}
	f, name, err := c.seal(ctx, pt, pol)
	if err != nil {
		return nil, err
	}
	p := &Preview{
		Zone: c.zone, Version: c.version.String(), Anonymous: c.anonymous,
		Timestamp: now, Plaintext: hex.EncodeToString(pt),
		Name: name, ReportID: hex.EncodeToString(f.reportID), Effort: f.effort,
		PolicyName: c.PolicyName(), Policy: pol,
	}
	var zero [16]byte
	if id != nil {
		p.Cluster, p.Node = hex.EncodeToString(id.cluster[:]), hex.EncodeToString(id.node[:])
	} else {
		p.Cluster, p.Node = hex.EncodeToString(zero[:]), hex.EncodeToString(zero[:])
	}
	p.Status, p.Message, _ = pol.Evaluate(c.version)
	return p, nil
}

// LastKnown is the last verified policy kept in the state file for this zone
// and key id (nil if none), and the status it gives the running version. It
// sends nothing.
func (c *Client) LastKnown() (*Policy, Status, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := loadState(c.state)
	if err != nil {
		return nil, 0, "", err
	}
	p := st.entry(c.zone, c.key.ID).kept(c.zone, c.key)
	if p == nil {
		return nil, 0, "", nil
	}
	s, m, _ := p.Evaluate(c.version)
	return p, s, m, nil
}
