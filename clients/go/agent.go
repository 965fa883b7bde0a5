package vcheckd

// The agent: the check run periodically, as the agent contract says for every
// client (docs/CLIENTS.md, "The agent contract"; the Rust `vcheckd agent` and
// the Python client behave the same). The status turns stale only at a failed
// check (or at the start, from the kept state): no timer runs to the policy's
// expiry.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"time"
)

// LogLevel is a log line's level.
type LogLevel int

const (
	LevelDebug LogLevel = iota
	LevelInfo
	LevelWarning
)

func (l LogLevel) String() string {
	switch l {
	case LevelDebug:
		return "debug"
	case LevelInfo:
		return "info"
	}
	return "warning"
}

// Logger receives the agent's log lines: one per change of status (warning
// for upgrade-required and stale, info otherwise) and one per failed check
// (debug).
type Logger func(level LogLevel, message string)

// AgentConfig sets the agent's schedule and outputs. Zero durations take
// the defaults; a negative StartupJitter means no startup delay.
type AgentConfig struct {
	// StartupJitter: the first check runs after a uniform random delay in
	// [0, StartupJitter] (default 300 s), so that a fleet started together
	// does not ask together.
	StartupJitter time.Duration
	// Interval between successful checks (default 86400 s), each with a
	// random jitter of ±10%.
	Interval time.Duration
	// BackoffBase is the first retry delay after a failure (default 60 s),
	// doubling per consecutive failure up to BackoffCap (default
	// min(Interval, 21600 s)), each with ±10% jitter.
	BackoffBase, BackoffCap time.Duration
	// StatusFile, if set, is where the JSON status is written (atomically)
	// for GUIs to read.
	StatusFile string
	// TextFile, if set, is a node_exporter textfile-collector file (must
	// end in .prom) with the status as gauges.
	TextFile string
	// Logger receives the log lines (default: the standard logger, without
	// debug lines).
	Logger Logger
	// OnUpdate, if set, is called with the status after every check (after
	// the files are written) and once at start.
	OnUpdate func(AgentStatus)
}

// AgentStatus is the agent's state, as the status file holds it.
type AgentStatus struct {
	Zone    string `json:"zone"`
	Running string `json:"running"`
	Status  Status `json:"status"`
	// LastStatus is the last verified status (nil before any).
	LastStatus *Status `json:"last_status"`
	// StatusCode is LastStatus's code 0-3 (nil before any).
	StatusCode  *int    `json:"status_code"`
	Message     string  `json:"message"`
	Latest      *string `json:"latest"`
	AdvisoryURL *string `json:"advisory_url"`
	Anonymous   bool    `json:"anonymous"`
	// Times in UTC, whole seconds.
	CheckedAt           *time.Time `json:"checked_at"`
	LastSuccess         *time.Time `json:"last_success"`
	PolicyExpires       *time.Time `json:"policy_expires"`
	NextCheck           *time.Time `json:"next_check"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	// Error is the last failure's one-line text (nil after a success).
	Error *string `json:"error"`
}

// Agent runs a Client's check periodically. Make it with NewAgent; Run runs
// it until its context ends.
type Agent struct {
	client *Client
	cfg    AgentConfig
	now    chan struct{}

	mu     sync.Mutex
	status AgentStatus
	// lastMessage is the last verified status's message (kept for stale).
	lastMessage string
}

// NewAgent makes an agent for the client.
func NewAgent(client *Client, cfg AgentConfig) (*Agent, error) {
	if cfg.StartupJitter == 0 {
		cfg.StartupJitter = 300 * time.Second
	}
	if cfg.StartupJitter < 0 {
		cfg.StartupJitter = 0
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 86400 * time.Second
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 60 * time.Second
	}
	if cfg.BackoffCap <= 0 {
		cfg.BackoffCap = 21600 * time.Second
		if cfg.Interval < cfg.BackoffCap {
			cfg.BackoffCap = cfg.Interval
		}
	}
	if cfg.TextFile != "" && !strings.HasSuffix(cfg.TextFile, ".prom") {
		return nil, fmt.Errorf("%w: the textfile %q must end in .prom (node_exporter reads only those)", ErrConfig, cfg.TextFile)
	}
	if cfg.Logger == nil {
		cfg.Logger = func(level LogLevel, msg string) {
			if level > LevelDebug {
				log.Printf("%s: %s", level, msg)
			}
		}
	}
	a := &Agent{client: client, cfg: cfg, now: make(chan struct{}, 1)}
	a.status = AgentStatus{
		Zone:      client.zone,
		Running:   client.version.String(),
		Status:    StatusStale,
		Anonymous: client.anonymous,
	}
	return a, nil
}

// CheckNow asks a running agent to check at once (as SIGHUP does for
// `vcheckd agent`); it does not wait for the check.
func (a *Agent) CheckNow() {
	select {
	case a.now <- struct{}{}:
	default:
	}
}

// Status is a copy of the agent's current status.
func (a *Agent) Status() AgentStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Run checks after the startup delay, then every interval, backing off on
// failure, until ctx ends; then it writes the files once more and returns
// nil. An error is returned only when the status files cannot be written
// at start. With DISABLE_VERSION_CHECK it sends nothing and reports
// `disabled`.
func (a *Agent) Run(ctx context.Context) error {
	if a.client.disabled {
		a.mu.Lock()
		a.status.Status = StatusDisabled
		a.status.Message = "version check disabled (DISABLE_VERSION_CHECK)"
		a.mu.Unlock()
		a.cfg.Logger(LevelInfo, a.describe(a.Status()))
		if err := a.publish(); err != nil {
			return err
		}
		<-ctx.Done()
		return nil
	}
	a.seed()
	delay := uniform(a.cfg.StartupJitter)
	for {
		a.setNext(delay)
		if err := a.publish(); err != nil {
			a.cfg.Logger(LevelWarning, err.Error())
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			a.setNext(-1)
			_ = a.publish()
			return nil
		case <-timer.C:
		case <-a.now:
			timer.Stop()
		}
		res, err := a.client.Check(ctx)
		if ctx.Err() != nil {
			a.setNext(-1)
			_ = a.publish()
			return nil
		}
		if err == nil {
			a.succeeded(res)
			delay = jitter(a.cfg.Interval)
		} else {
			failures := a.failed(err)
			delay = jitter(a.backoff(failures))
		}
	}
}

// backoff is BackoffBase doubled per consecutive failure after the first,
// capped at BackoffCap.
func (a *Agent) backoff(failures int) time.Duration {
	d := a.cfg.BackoffBase
	for i := 1; i < failures && d < a.cfg.BackoffCap; i++ {
		d *= 2
	}
	if d > a.cfg.BackoffCap {
		d = a.cfg.BackoffCap
	}
	return d
}

// seed takes the last verified policy from the client state, so that a
// restarted agent keeps its last status until its first check.
func (a *Agent) seed() {
	p, s, msg, err := a.client.LastKnown()
	if err != nil || p == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setVerified(s, msg, p, "")
	if a.client.unixNow() >= p.Expires {
		a.status.Status = StatusStale
		a.status.Message = a.staleMessage()
	}
}

func (a *Agent) setVerified(s Status, msg string, p *Policy, url string) {
	code, _ := s.Code()
	latest := p.Latest.String()
	expires := p.ExpiresTime()
	a.status.Status, a.status.Message, a.lastMessage = s, msg, msg
	a.status.LastStatus, a.status.StatusCode = &s, &code
	a.status.Latest, a.status.PolicyExpires = &latest, &expires
	a.status.AdvisoryURL = nil
	if url != "" {
		a.status.AdvisoryURL = &url
	}
}

func (a *Agent) succeeded(res *Result) {
	a.mu.Lock()
	before := a.status.Status
	now := a.clock()
	a.setVerified(res.Status, res.Message, res.Policy, res.AdvisoryURL)
	a.status.CheckedAt, a.status.LastSuccess = &now, &now
	a.status.ConsecutiveFailures, a.status.Error = 0, nil
	st := a.status
	a.mu.Unlock()
	if st.Status != before {
		a.logChange(st)
	}
}

// failed keeps the last verified status (sticky) unless its policy has
// expired or there is none: then the status is stale.
func (a *Agent) failed(err error) int {
	a.mu.Lock()
	before := a.status.Status
	now := a.clock()
	line := strings.ReplaceAll(err.Error(), "\n", " ")
	a.status.CheckedAt, a.status.Error = &now, &line
	a.status.ConsecutiveFailures++
	if a.status.LastStatus == nil || !now.Before(*a.status.PolicyExpires) {
		a.status.Status = StatusStale
		a.status.Message = a.staleMessage()
	}
	st := a.status
	a.mu.Unlock()
	a.cfg.Logger(LevelDebug, fmt.Sprintf("version check of %s failed (%d in a row): %s", st.Zone, st.ConsecutiveFailures, line))
	if st.Status != before {
		a.logChange(st)
	}
	return st.ConsecutiveFailures
}

func (a *Agent) staleMessage() string {
	if a.status.LastStatus == nil {
		return "no release policy verified yet"
	}
	return fmt.Sprintf("no fresh release policy since %s (last: %s)", a.status.PolicyExpires.Format(time.RFC3339), a.lastMessage)
}

func (a *Agent) logChange(st AgentStatus) {
	level := LevelInfo
	if st.Status == StatusUpgradeRequired || st.Status == StatusStale {
		level = LevelWarning
	}
	a.cfg.Logger(level, a.describe(st))
}

func (a *Agent) describe(st AgentStatus) string {
	s := fmt.Sprintf("version check %s: %s %s: %s", st.Zone, st.Running, st.Status, st.Message)
	if st.Error != nil && st.Status == StatusStale {
		s += " (" + *st.Error + ")"
	}
	return s
}

func (a *Agent) clock() time.Time { return a.client.now().UTC().Truncate(time.Second) }

// setNext records when the next check runs (d < 0: none).
func (a *Agent) setNext(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d < 0 {
		a.status.NextCheck = nil
		return
	}
	next := a.client.now().Add(d).UTC().Truncate(time.Second)
	a.status.NextCheck = &next
}

// publish writes the status file and the textfile, then calls OnUpdate.
func (a *Agent) publish() error {
	st := a.Status()
	var errs []string
	if a.cfg.StatusFile != "" {
		b, err := json.MarshalIndent(st, "", "  ")
		if err == nil {
			err = writeAtomic(a.cfg.StatusFile, append(b, '\n'), 0o644)
		}
		if err != nil {
			errs = append(errs, "status file: "+err.Error())
		}
	}
	if a.cfg.TextFile != "" {
		if err := writeAtomic(a.cfg.TextFile, []byte(textfile(st)), 0o644); err != nil {
			errs = append(errs, "textfile: "+err.Error())
		}
	}
	if a.cfg.OnUpdate != nil {
		a.cfg.OnUpdate(st)
	}
	if len(errs) > 0 {
		return errors.New("vcheckd agent: " + strings.Join(errs, "; "))
	}
	return nil
}

// textfile is the status in node_exporter's textfile-collector format.
func textfile(st AgentStatus) string {
	var b strings.Builder
	zone := `zone="` + promEscape(st.Zone) + `"`
	if st.StatusCode != nil {
		latest := ""
		if st.Latest != nil {
			latest = *st.Latest
		}
		b.WriteString("# HELP vcheckd_version_status Status code of the last verified check: 0 unknown, 1 up to date, 2 upgrade available, 3 upgrade required.\n")
		b.WriteString("# TYPE vcheckd_version_status gauge\n")
		fmt.Fprintf(&b, "vcheckd_version_status{%s,running=\"%s\",latest=\"%s\"} %d\n", zone, promEscape(st.Running), promEscape(latest), *st.StatusCode)
	}
	state := "ok"
	switch st.Status {
	case StatusStale:
		state = "stale"
	case StatusDisabled:
		state = "disabled"
	}
	b.WriteString("# HELP vcheckd_version_check_state The agent's state: 1 for the current one.\n")
	b.WriteString("# TYPE vcheckd_version_check_state gauge\n")
	for _, s := range []string{"ok", "stale", "disabled"} {
		v := 0
		if s == state {
			v = 1
		}
		fmt.Fprintf(&b, "vcheckd_version_check_state{%s,state=\"%s\"} %d\n", zone, s, v)
	}
	// 0 before any success, as the Rust and Python agents write it.
	var lastSuccess int64
	if st.LastSuccess != nil {
		lastSuccess = st.LastSuccess.Unix()
	}
	b.WriteString("# HELP vcheckd_version_check_last_success_timestamp_seconds When a policy was last verified.\n")
	b.WriteString("# TYPE vcheckd_version_check_last_success_timestamp_seconds gauge\n")
	fmt.Fprintf(&b, "vcheckd_version_check_last_success_timestamp_seconds{%s} %d\n", zone, lastSuccess)
	b.WriteString("# HELP vcheckd_version_check_consecutive_failures Checks failed since the last success.\n")
	b.WriteString("# TYPE vcheckd_version_check_consecutive_failures gauge\n")
	fmt.Fprintf(&b, "vcheckd_version_check_consecutive_failures{%s} %d\n", zone, st.ConsecutiveFailures)
	return b.String()
}

// promEscape escapes a label value (backslash, double quote, newline).
func promEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// uniform is a random duration in [0, max], from the OS random source.
func uniform(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(randomFraction() * float64(max))
}

// jitter is d ± 10%, from the OS random source.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*randomFraction()))
}

// randomFraction is uniform in [0, 1] from crypto/rand.
func randomFraction() float64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// The OS random source does not fail on supported systems; the
		// middle of the range keeps the schedule sane if it ever does.
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / float64(uint64(1)<<53-1)
}
