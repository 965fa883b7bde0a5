package vcheckd

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Protocol constants (PROTOCOL §16-§21).
const (
	policyFormat     = 0x02
	policyMarker     = "v=vc2"
	policyMinLength  = 122 // header, empty URL and signature
	maxValiditySecs  = 691200
	replaySkewSecs   = 7200
	epochSecs        = 604800
	policySigContext = "vcheckd v2 policy"
)

// PublicKey is a zone's Ed25519 verification key and its key id: what a
// `vck2-public:<id>:<64 hex>` token holds. It is the one key a client carries.
type PublicKey struct {
	ID  uint8
	Key ed25519.PublicKey
}

// ParsePublicKey reads a public key token, or the text of a public key file
// (one token; blank lines and lines starting with '#' are ignored).
func ParsePublicKey(text string) (PublicKey, error) {
	var tokens []string
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, line)
	}
	if len(tokens) != 1 {
		return PublicKey{}, fmt.Errorf("%w: a public key is one vck2-public:<id>:<64 hex> token, found %d lines", ErrConfig, len(tokens))
	}
	parts := strings.Split(tokens[0], ":")
	if len(parts) != 3 || parts[0] != "vck2-public" {
		return PublicKey{}, fmt.Errorf("%w: %q is not a vck2-public:<id>:<64 hex> token (the zone's public key file, from vcheckd keygen --public)", ErrConfig, shorten(tokens[0]))
	}
	id, err := strconv.ParseUint(parts[1], 10, 8)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: key id %q is not 0-255", ErrConfig, parts[1])
	}
	key, err := hex.DecodeString(parts[2])
	if err != nil || len(key) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("%w: the public key is not 64 hex digits", ErrConfig)
	}
	return PublicKey{ID: uint8(id), Key: ed25519.PublicKey(key)}, nil
}

// ReadPublicKeyFile reads a public key file as `vcheckd keygen --public` writes it.
func ReadPublicKeyFile(path string) (PublicKey, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: the zone's public key file: %v", ErrConfig, err)
	}
	k, err := ParsePublicKey(string(text))
	if err != nil {
		return PublicKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func (k PublicKey) String() string {
	return fmt.Sprintf("vck2-public:%d:%s", k.ID, hex.EncodeToString(k.Key))
}

func shorten(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Line is an end-of-life release line: MAJOR (every MAJOR.*.*) when
// WholeMajor, else MAJOR.MINOR.
type Line struct {
	Major, Minor uint64
	WholeMajor   bool
}

func (l Line) String() string {
	if l.WholeMajor {
		return strconv.FormatUint(l.Major, 10)
	}
	return strconv.FormatUint(l.Major, 10) + "." + strconv.FormatUint(l.Minor, 10)
}

func (l Line) contains(r Release) bool {
	return r.Major == l.Major && (l.WholeMajor || r.Minor == l.Minor)
}

// Advisory is a security advisory: its id and the first fixed version on
// each maintained line.
type Advisory struct {
	ID    string
	Fixed []Release
}

// Policy is a zone's verified release policy (PROTOCOL §20).
type Policy struct {
	KeyID  uint8
	Serial uint32
	// Issued and Expires are unix seconds.
	Issued, Expires uint64
	// Epoch and SealKey: the week's X25519 key reports are sealed to.
	Epoch   uint16
	SealKey [32]byte
	// Effort is the suggested effort in bits.
	Effort uint8
	// AdvisoryURL is "" or a URL holding "{id}" once.
	AdvisoryURL string
	// Releases in ascending order; EndOfLife and Advisories in the
	// configuration's order.
	Releases   []Release
	EndOfLife  []Line
	Advisories []Advisory
	// Latest: the highest release without a pre-release part, or the highest
	// if all are pre-releases.
	Latest Release
	// Wire is the signed wire form.
	Wire []byte
}

// IssuedTime and ExpiresTime are Issued and Expires as times.
func (p *Policy) IssuedTime() time.Time  { return unixTime(p.Issued) }
func (p *Policy) ExpiresTime() time.Time { return unixTime(p.Expires) }

func unixTime(s uint64) time.Time {
	if s > 1<<62 {
		s = 1 << 62
	}
	return time.Unix(int64(s), 0).UTC()
}

// Seen is what a client accepted before under one zone and key id: the
// newest serial and the newest issued (PROTOCOL §21). The zero Seen is a
// client that accepted nothing yet.
type Seen struct {
	Serial uint32
	Issued uint64
}

// PolicyFromTXT joins a TXT record's strings into a policy's wire form: the
// first string must be exactly "v=vc2"; ok is false otherwise.
func PolicyFromTXT(strs [][]byte) (wire []byte, ok bool) {
	if len(strs) == 0 || string(strs[0]) != policyMarker {
		return nil, false
	}
	return bytes.Join(strs[1:], nil), true
}

// VerifyTXT verifies the policy among an answer's TXT records (each a list
// of character-strings) in the order of PROTOCOL §21: records whose first
// string is not "v=vc2" are ignored, the others tried in order, and the
// first that verifies is returned. now is unix seconds. With no v=vc2
// record the error is ErrMissing; when none verifies, the first's error.
func VerifyTXT(records [][][]byte, zone string, key PublicKey, seen Seen, now uint64) (*Policy, error) {
	var first error
	for _, rec := range records {
		wire, ok := PolicyFromTXT(rec)
		if !ok {
			continue
		}
		p, err := VerifyPolicy(wire, zone, key, seen, now)
		if err == nil {
			return p, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return nil, &PolicyError{Reason: ErrMissing}
	}
	return nil, first
}

// VerifyPolicy checks a policy's wire form (steps 2-8 of PROTOCOL §21) for
// the zone (canonical form), under the key, against what was seen before, at
// now (unix seconds). Every refusal is a *PolicyError.
func VerifyPolicy(wire []byte, zone string, key PublicKey, seen Seen, now uint64) (*Policy, error) {
	p, err := decodePolicy(wire, zone, key)
	if err != nil {
		return nil, err
	}
	t := now
	if seen.Issued > t {
		t = seen.Issued
	}
	if t >= p.Expires {
		if now >= p.Expires {
			return nil, policyErr(ErrExpired, "expired at %s; now is %s", fmtUnix(p.Expires), fmtUnix(now))
		}
		return nil, policyErr(ErrExpired, "expired at %s, before a policy issued at %s that was accepted already", fmtUnix(p.Expires), fmtUnix(seen.Issued))
	}
	if p.Issued+replaySkewSecs < seen.Issued {
		return nil, policyErr(ErrReplayed, "issued at %s, a policy issued at %s was accepted already", fmtUnix(p.Issued), fmtUnix(seen.Issued))
	}
	if p.Serial < seen.Serial {
		return nil, policyErr(ErrRollback, "serial %d, serial %d was accepted already", p.Serial, seen.Serial)
	}
	return p, nil
}

// decodePolicy is steps 2-5 of PROTOCOL §21: form, key id, signature,
// compact body and validity bounds; freshness is the caller's.
func decodePolicy(wire []byte, zone string, key PublicKey) (*Policy, error) {
	if len(wire) < policyMinLength {
		return nil, policyErr(ErrMalformed, "%d bytes, at least %d expected", len(wire), policyMinLength)
	}
	if wire[0] != policyFormat {
		return nil, policyErr(ErrMalformed, "format byte %d, 2 expected", wire[0])
	}
	if wire[1] != key.ID {
		return nil, policyErr(ErrUnknownKey, "key id %d, the client carries key id %d", wire[1], key.ID)
	}
	body, sig := wire[:len(wire)-ed25519.SignatureSize], wire[len(wire)-ed25519.SignatureSize:]
	if len(key.Key) != ed25519.PublicKeySize || !ed25519.Verify(key.Key, signedMessage(zone, body), sig) {
		return nil, policyErr(ErrSignature, "not signed by key %d for zone %s (forged, altered or moved)", key.ID, zone)
	}
	p, err := parsePolicyBody(body)
	if err != nil {
		return nil, err
	}
	p.Wire = append([]byte(nil), wire...)
	if !(p.Issued < p.Expires && p.Expires-p.Issued <= maxValiditySecs) {
		return nil, policyErr(ErrValidity, "issued %d, expires %d: at most eight days after issued", p.Issued, p.Expires)
	}
	return p, nil
}

func fmtUnix(s uint64) string { return unixTime(s).Format(time.RFC3339) }

// signedMessage is what the Ed25519 signature covers (PROTOCOL §20).
func signedMessage(zone string, body []byte) []byte {
	m := make([]byte, 0, len(policySigContext)+len(zone)+2+len(body))
	m = append(m, policySigContext...)
	m = append(m, 0)
	m = append(m, zone...)
	m = append(m, 0)
	return append(m, body...)
}

// reader reads the compact form; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...interface{}) {
	if r.err == nil {
		r.err = policyErr(ErrMalformed, format, args...)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("%s: %d bytes needed, %d left", what, n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

// varint: unsigned LEB128, at most 10 bytes, below 2^64; longer-than-needed
// encodings are accepted.
func (r *reader) varint(what string) uint64 {
	var v uint64
	for i := 0; ; i++ {
		if r.err != nil {
			return 0
		}
		if i == 10 {
			r.fail("%s: a varint longer than 10 bytes", what)
			return 0
		}
		if len(r.b) == 0 {
			r.fail("%s: truncated", what)
			return 0
		}
		c := r.b[0]
		r.b = r.b[1:]
		if i == 9 && c&0x7f > 1 {
			r.fail("%s: a varint of more than 64 bits", what)
			return 0
		}
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c&0x80 == 0 {
			return v
		}
	}
}

// count is a varint no larger than the bytes left.
func (r *reader) count(what string) int {
	n := r.varint(what)
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("%s: %d claimed, %d bytes left", what, n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *reader) text(what string) string {
	b := r.take(r.count(what), what)
	if r.err == nil && !utf8.Valid(b) {
		r.fail("%s: not UTF-8", what)
	}
	return string(b)
}

func (r *reader) release(what string) Release {
	var v Release
	v.Major = r.varint(what)
	v.Minor = r.varint(what)
	pp := r.varint(what)
	v.Patch = pp >> 1
	if pp&1 == 1 {
		v.Pre = r.text(what)
		if r.err == nil && !validPreRelease(v.Pre) {
			r.fail("%s: pre-release %q is not SemVer", what, v.Pre)
		}
	}
	return v
}

func parsePolicyBody(body []byte) (*Policy, error) {
	p := &Policy{
		KeyID:   body[1],
		Serial:  binary.BigEndian.Uint32(body[2:6]),
		Issued:  binary.BigEndian.Uint64(body[6:14]),
		Expires: binary.BigEndian.Uint64(body[14:22]),
		Epoch:   binary.BigEndian.Uint16(body[22:24]),
		Effort:  body[56],
	}
	copy(p.SealKey[:], body[24:56])
	r := &reader{b: body[58:]}
	p.AdvisoryURL = string(r.take(int(body[57]), "advisory URL"))
	if r.err == nil {
		if err := checkAdvisoryURL(p.AdvisoryURL); err != "" {
			r.fail("advisory URL %q: %s", p.AdvisoryURL, err)
		}
	}
	n := r.count("release count")
	if r.err == nil && n == 0 {
		r.fail("an empty release list")
	}
	listed := make([]Release, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		listed = append(listed, r.release("release"))
	}
	for i, k := 0, r.count("end-of-life count"); i < k && r.err == nil; i++ {
		major, minor1 := r.varint("end-of-life line"), r.varint("end-of-life line")
		p.EndOfLife = append(p.EndOfLife, Line{Major: major, Minor: minor1 - 1, WholeMajor: minor1 == 0})
	}
	for i, k := 0, r.count("advisory count"); i < k && r.err == nil; i++ {
		a := Advisory{ID: r.text("advisory id")}
		fixes := r.count("fix count")
		if r.err == nil && fixes == 0 {
			r.fail("advisory %q without a fix", a.ID)
		}
		for j := 0; j < fixes && r.err == nil; j++ {
			idx := r.varint("fix")
			switch {
			case r.err != nil:
			case idx < uint64(len(listed)):
				a.Fixed = append(a.Fixed, listed[idx])
			case idx == uint64(len(listed)):
				a.Fixed = append(a.Fixed, r.release("inline fix"))
			default:
				r.fail("advisory %q: fix index %d past the %d releases", a.ID, idx, len(listed))
			}
		}
		p.Advisories = append(p.Advisories, a)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d bytes after the advisories", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	sort.SliceStable(listed, func(i, j int) bool { return listed[i].Compare(listed[j]) < 0 })
	p.Releases = listed
	p.Latest = latest(listed)
	return p, nil
}

// checkAdvisoryURL returns what is wrong with an advisory URL, or "".
func checkAdvisoryURL(u string) string {
	if u == "" {
		return ""
	}
	if !utf8.ValidString(u) {
		return "not UTF-8"
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return "not an https:// or http:// URL"
	}
	for _, c := range u {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return "a space or control character"
		}
	}
	if strings.Count(u, "{id}") != 1 {
		return "{id} must occur once"
	}
	return ""
}

// latest is the highest release without a pre-release part, else the
// highest; sorted is in ascending order and not empty.
func latest(sorted []Release) Release {
	for i := len(sorted) - 1; i >= 0; i-- {
		if sorted[i].Pre == "" {
			return sorted[i]
		}
	}
	return sorted[len(sorted)-1]
}

// Status is what a check says about the running version. The first four are
// the status codes of PROTOCOL §8.4 (those of PowerDNS security polling);
// StatusStale and StatusDisabled are the agent's (docs/CLIENTS.md, "The agent contract").
type Status uint8

const (
	StatusUnknown          Status = 0
	StatusUpToDate         Status = 1
	StatusUpgradeAvailable Status = 2
	StatusUpgradeRequired  Status = 3
	// StatusStale: no fresh policy could be verified.
	StatusStale Status = 4
	// StatusDisabled: DISABLE_VERSION_CHECK is set.
	StatusDisabled Status = 5
)

var statusNames = [...]string{"unknown", "up-to-date", "upgrade-available", "upgrade-required", "stale", "disabled"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Code is the status code 0-3 of a verified status; ok is false for stale
// and disabled.
func (s Status) Code() (code int, ok bool) {
	if s <= StatusUpgradeRequired {
		return int(s), true
	}
	return 0, false
}

// MarshalText writes the status's name ("upgrade-required").
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a status's name.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("vcheckd: unknown status %q", b)
}

// Evaluate applies the release rule (PROTOCOL §11, §21) to the running
// version: the status, the message, and the advisory URL when an advisory
// gave the status ("" otherwise).
func (p *Policy) Evaluate(running Version) (status Status, message string, advisoryURL string) {
	r := running.Release()
	for _, l := range p.EndOfLife {
		if l.contains(r) {
			return StatusUpgradeRequired, fmt.Sprintf("%s is end of life; upgrade to %s", l, p.Latest), ""
		}
	}
	for _, a := range p.Advisories {
		if fix, ok := a.affects(r); ok {
			msg := fmt.Sprintf("security fix %s in %s", a.ID, fix)
			if p.AdvisoryURL != "" {
				url := strings.Replace(p.AdvisoryURL, "{id}", a.ID, 1)
				return StatusUpgradeRequired, msg + ": " + url, url
			}
			return StatusUpgradeRequired, msg, ""
		}
	}
	known := false
	for _, v := range p.Releases {
		if v.Compare(r) == 0 {
			known = true
			break
		}
	}
	switch {
	case !known:
		return StatusUnknown, fmt.Sprintf("%s is not a known release; latest is %s", running, p.Latest), ""
	case r.Compare(p.Latest) < 0:
		return StatusUpgradeAvailable, fmt.Sprintf("%s is available", p.Latest), ""
	default:
		return StatusUpToDate, "up to date", ""
	}
}

// affects: r is below the newest fix and no fix on r's line (same
// MAJOR.MINOR) is at or below r; fix is the lowest fix on r's line above
// r, else the newest fix.
func (a Advisory) affects(r Release) (fix Release, ok bool) {
	newest := a.Fixed[0]
	var onLine *Release
	for i, f := range a.Fixed {
		if f.Compare(newest) > 0 {
			newest = f
		}
		if f.Major == r.Major && f.Minor == r.Minor {
			if f.Compare(r) <= 0 {
				return Release{}, false
			}
			if onLine == nil || f.Compare(*onLine) < 0 {
				onLine = &a.Fixed[i]
			}
		}
	}
	if r.Compare(newest) >= 0 {
		return Release{}, false
	}
	if onLine != nil {
		return *onLine, true
	}
	return newest, true
}
