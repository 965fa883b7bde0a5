package vcheckd

// Every vector of docs/vectors/v2.json (PROTOCOL §22), read from the file
// that the Rust and Python clients read too.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const vectorsPath = "../../docs/vectors/v2.json"

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type vectorFile struct {
	Constants struct {
		Argon           map[string]int `json:"argon2id"`
		EpochSecs       uint64         `json:"epoch_secs"`
		FrameSizes      []int          `json:"frame_sizes"`
		GridSecs        uint64         `json:"grid_secs"`
		MaxValiditySecs uint64         `json:"max_validity_secs"`
		MinValiditySecs uint64         `json:"min_validity_secs"`
		PlaintextSizes  []int          `json:"plaintext_sizes"`
		SkewSecs        uint64         `json:"skew_secs"`
	} `json:"constants"`
	Keys struct {
		Ed25519Seed hexBytes `json:"ed25519_seed"`
		EpochOfNow  uint16   `json:"epoch_of_now"`
		Epochs      []struct {
			Epoch         uint16   `json:"epoch"`
			IKM           hexBytes `json:"ikm"`
			Seed          hexBytes `json:"seed"`
			Start         uint64   `json:"start"`
			X25519Private hexBytes `json:"x25519_private"`
			X25519Public  hexBytes `json:"x25519_public"`
		} `json:"epochs"`
		Now     uint64 `json:"now"`
		Private string `json:"private"`
		Public  string `json:"public"`
	} `json:"keys"`
	IDs []struct {
		Zone          string   `json:"zone"`
		ClusterID     string   `json:"cluster_id"`
		NodeID        string   `json:"node_id"`
		Salt          hexBytes `json:"salt"`
		ClusterSecret hexBytes `json:"cluster_secret"`
		Cluster       hexBytes `json:"cluster"`
		Node          hexBytes `json:"node"`
	} `json:"ids"`
	Reports []struct {
		Description string `json:"description"`
		Inputs      struct {
			ClusterID    *string  `json:"cluster_id"`
			NodeID       *string  `json:"node_id"`
			EffortTarget int      `json:"effort_target"`
			Epoch        uint16   `json:"epoch"`
			IKME         hexBytes `json:"ikm_e"`
			KeyID        uint8    `json:"key_id"`
			SealKey      hexBytes `json:"seal_key"`
			Timestamp    uint64   `json:"timestamp"`
			Version      string   `json:"version"`
			Zone         string   `json:"zone"`
		} `json:"inputs"`
		Plaintext        hexBytes `json:"plaintext"`
		SkE              hexBytes `json:"sk_e"`
		Enc              hexBytes `json:"enc"`
		SharedSecret     hexBytes `json:"shared_secret"`
		Key              hexBytes `json:"key"`
		BaseNonce        hexBytes `json:"base_nonce"`
		Ciphertext       hexBytes `json:"ciphertext"`
		FrameBeforeProof hexBytes `json:"frame_before_proof"`
		Proof            hexBytes `json:"proof"`
		EffortDigest     hexBytes `json:"effort_digest"`
		Effort           int      `json:"effort"`
		Frame            hexBytes `json:"frame"`
		ReportID         hexBytes `json:"report_id"`
		Labels           []string `json:"labels"`
		Name             string   `json:"name"`
		NameLength       int      `json:"name_length"`
	} `json:"reports"`
	Policies []struct {
		Description string `json:"description"`
		Inputs      struct {
			AdvisoryURL string `json:"advisory_url"`
			Effort      uint8  `json:"effort"`
			Epoch       uint16 `json:"epoch"`
			KeyID       uint8  `json:"key_id"`
			Releases    struct {
				Advisories []struct {
					ID    string   `json:"id"`
					Fixed []string `json:"fixed"`
				} `json:"advisories"`
				EndOfLife []string `json:"end_of_life"`
				Versions  []string `json:"versions"`
			} `json:"releases"`
			SealKey  hexBytes `json:"seal_key"`
			Serial   uint32   `json:"serial"`
			SignedAt uint64   `json:"signed_at"`
			Validity uint64   `json:"validity"`
			Zone     string   `json:"zone"`
		} `json:"inputs"`
		Wire       hexBytes   `json:"wire"`
		TXTStrings []hexBytes `json:"txt_strings"`
		Issued     uint64     `json:"issued"`
		Expires    uint64     `json:"expires"`
		Latest     string     `json:"latest"`
		VerifyAt   uint64     `json:"verify_at"`
		Statuses   []struct {
			Version string `json:"version"`
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"statuses"`
	} `json:"policies"`
	InvalidPolicies []struct {
		Description string     `json:"description"`
		Error       string     `json:"error"`
		Now         uint64     `json:"now"`
		Seen        *Seen      `json:"seen"`
		TXTStrings  []hexBytes `json:"txt_strings"`
		Zone        string     `json:"zone"`
	} `json:"invalid_policies"`
}

func loadVectors(t *testing.T) *vectorFile {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("the shared vectors (PROTOCOL §22): %v", err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	if len(v.Reports) == 0 || len(v.Policies) == 0 || len(v.InvalidPolicies) == 0 || len(v.IDs) == 0 {
		t.Fatalf("%s: a section is empty", vectorsPath)
	}
	return &v
}

func (s *Seen) UnmarshalJSON(b []byte) error {
	var raw struct {
		Serial uint32 `json:"serial"`
		Issued uint64 `json:"issued"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*s = Seen{Serial: raw.Serial, Issued: raw.Issued}
	return nil
}

func eq(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, want)
	}
}

func TestVectorConstants(t *testing.T) {
	v := loadVectors(t)
	c := v.Constants
	for name, pair := range map[string][2]uint64{
		"epoch_secs":          {c.EpochSecs, epochSecs},
		"max_validity_secs":   {c.MaxValiditySecs, maxValiditySecs},
		"skew_secs":           {c.SkewSecs, replaySkewSecs},
		"argon2id.iterations": {uint64(c.Argon["iterations"]), argonTime},
		"argon2id.memory_kib": {uint64(c.Argon["memory_kib"]), argonMemory},
		"argon2id.lanes":      {uint64(c.Argon["lanes"]), argonThreads},
		"argon2id.length":     {uint64(c.Argon["length"]), 32},
		"plaintext_sizes[0]":  {uint64(c.PlaintextSizes[0]), smallPlaintext},
		"plaintext_sizes[1]":  {uint64(c.PlaintextSizes[1]), largePlaintext},
	} {
		if pair[0] != pair[1] {
			t.Errorf("constant %s: file %d, client %d", name, pair[0], pair[1])
		}
	}
}

// The zone key: the public token is the seed's Ed25519 key, and the
// ratchet's epochs derive as §16 says (checks DeriveKeyPair, which the
// client uses for every ephemeral key).
func TestVectorKeys(t *testing.T) {
	v := loadVectors(t)
	pub, err := ParsePublicKey("# the zone's key\n\n" + v.Keys.Public + "\n")
	if err != nil {
		t.Fatal(err)
	}
	// Hex in lower or upper case (§16).
	upper, err := ParsePublicKey(v.Keys.Public[:14] + strings.ToUpper(v.Keys.Public[14:]))
	if err != nil || !bytes.Equal(upper.Key, pub.Key) {
		t.Errorf("upper-case hex: %v", err)
	}
	if pub.ID != 7 || pub.String() != v.Keys.Public {
		t.Errorf("parsed %v from %s", pub, v.Keys.Public)
	}
	eq(t, "public key of the seed", ed25519.NewKeyFromSeed(v.Keys.Ed25519Seed).Public().(ed25519.PublicKey), pub.Key)
	if got := uint16(v.Keys.Now / epochSecs); got != v.Keys.EpochOfNow {
		t.Errorf("epoch(now) = %d, file %d", got, v.Keys.EpochOfNow)
	}
	var seed []byte
	for i, e := range v.Keys.Epochs {
		if i > 0 {
			m := hmac.New(sha256.New, seed)
			m.Write([]byte("vcheckd v2 ratchet"))
			eq(t, "ratchet seed of epoch "+strconv.Itoa(int(e.Epoch)), m.Sum(nil), e.Seed)
		}
		seed = e.Seed
		if e.Start != uint64(e.Epoch)*epochSecs {
			t.Errorf("epoch %d starts at %d", e.Epoch, e.Start)
		}
		m := hmac.New(sha256.New, seed)
		m.Write([]byte("vcheckd v2 epoch key"))
		eq(t, "ikm", m.Sum(nil), e.IKM)
		sk, pk := deriveKeyPair(e.IKM)
		eq(t, "x25519 private", sk, e.X25519Private)
		eq(t, "x25519 public", pk, e.X25519Public)
	}
}

func TestVectorIDs(t *testing.T) {
	v := loadVectors(t)
	for _, id := range v.IDs {
		eq(t, "salt", clusterSalt(id.Zone), id.Salt)
		secret := clusterSecret(id.Zone, id.ClusterID)
		eq(t, "cluster secret of "+id.ClusterID, secret, id.ClusterSecret)
		c, n := anonymizedIDs(secret, id.NodeID)
		eq(t, "cluster", c[:], id.Cluster)
		eq(t, "node of "+id.NodeID, n[:], id.Node)
	}
}

func TestVectorReports(t *testing.T) {
	v := loadVectors(t)
	for _, r := range v.Reports {
		r := r
		t.Run(r.Description, func(t *testing.T) {
			in := r.Inputs
			var id *identity
			if in.ClusterID != nil {
				c, n := anonymizedIDs(clusterSecret(in.Zone, *in.ClusterID), *in.NodeID)
				id = &identity{c, n}
			}
			pt, err := buildPlaintext(in.Timestamp, id, in.Version)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "plaintext", pt, r.Plaintext)
			f, err := sealReport(in.Zone, in.KeyID, in.Epoch, in.SealKey, in.IKME, pt)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "sk_e", f.skE, r.SkE)
			eq(t, "enc", f.enc, r.Enc)
			eq(t, "shared_secret", f.sharedSecret, r.SharedSecret)
			eq(t, "key", f.key, r.Key)
			eq(t, "base_nonce", f.baseNonce, r.BaseNonce)
			eq(t, "ciphertext", f.ciphertext, r.Ciphertext)
			// The file's frame_before_proof is the whole frame with a zero proof.
			eq(t, "frame before the proof", f.bytes, r.FrameBeforeProof)
			eq(t, "report id", f.reportID, r.ReportID)
			f.searchProof(context.Background(), in.EffortTarget, time.Minute)
			eq(t, "proof", f.bytes[len(f.bytes)-4:], r.Proof)
			eq(t, "frame", f.bytes, r.Frame)
			if f.effort != r.Effort || effortOf(f.bytes) != r.Effort {
				t.Errorf("effort %d (recomputed %d), file %d", f.effort, effortOf(f.bytes), r.Effort)
			}
			d := sha256.Sum256(append([]byte("vcheckd v2 effort\x00"), r.Frame...))
			eq(t, "effort digest", d[:], r.EffortDigest)
			labels, name, err := queryName(f.bytes, in.Zone)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(labels, ".") != strings.Join(r.Labels, ".") {
				t.Errorf("labels %q, file %q", labels, r.Labels)
			}
			// The file's name has the final dot; name_length counts without it (§6).
			if name != r.Name || len(strings.TrimSuffix(name, ".")) != r.NameLength {
				t.Errorf("name %q, file %q (%d)", name, r.Name, r.NameLength)
			}
		})
	}
}

// A budget too small for the target still sends the best proof found.
func TestProofBudgetKeepsTheBest(t *testing.T) {
	v := loadVectors(t)
	r := v.Reports[0]
	f := &frame{bytes: append([]byte{}, r.FrameBeforeProof...)}
	f.searchProof(context.Background(), 64, 20*time.Millisecond)
	if f.effort < 8 || f.effort >= 64 || effortOf(f.bytes) != f.effort {
		t.Errorf("best effort %d (recomputed %d) in 20 ms", f.effort, effortOf(f.bytes))
	}
}

func TestVectorPolicies(t *testing.T) {
	v := loadVectors(t)
	pub, err := ParsePublicKey(v.Keys.Public)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range v.Policies {
		p := p
		t.Run(p.Description, func(t *testing.T) {
			strs := make([][]byte, len(p.TXTStrings))
			for i, s := range p.TXTStrings {
				strs[i] = s
				if len(s) > 255 {
					t.Errorf("TXT string %d has %d bytes", i, len(s))
				}
			}
			wire, ok := PolicyFromTXT(strs)
			if !ok {
				t.Fatal("no v=vc2 marker")
			}
			eq(t, "wire from the TXT strings", wire, p.Wire)
			in := p.Inputs
			got, err := VerifyTXT([][][]byte{{[]byte("v=spf1 -all")}, strs}, in.Zone, pub, Seen{}, p.VerifyAt)
			if err != nil {
				t.Fatal(err)
			}
			if got.Serial != in.Serial || got.Issued != p.Issued || got.Expires != p.Expires ||
				got.Epoch != in.Epoch || got.Effort != in.Effort || got.KeyID != in.KeyID ||
				got.AdvisoryURL != in.AdvisoryURL || got.Latest.String() != p.Latest {
				t.Errorf("policy %+v", got)
			}
			if p.Issued != in.SignedAt-in.SignedAt%v.Constants.GridSecs || p.Expires != p.Issued+in.Validity {
				t.Errorf("issued %d, expires %d from signed_at %d", p.Issued, p.Expires, in.SignedAt)
			}
			eq(t, "seal key", got.SealKey[:], in.SealKey)
			var versions []string
			for _, r := range got.Releases {
				versions = append(versions, r.String())
			}
			if strings.Join(versions, " ") != strings.Join(in.Releases.Versions, " ") {
				t.Errorf("releases %v, file %v", versions, in.Releases.Versions)
			}
			var eol []string
			for _, l := range got.EndOfLife {
				eol = append(eol, l.String())
			}
			if strings.Join(eol, " ") != strings.Join(in.Releases.EndOfLife, " ") {
				t.Errorf("end of life %v, file %v", eol, in.Releases.EndOfLife)
			}
			if len(got.Advisories) != len(in.Releases.Advisories) {
				t.Fatalf("%d advisories, file %d", len(got.Advisories), len(in.Releases.Advisories))
			}
			for i, a := range in.Releases.Advisories {
				var fixed []string
				for _, f := range got.Advisories[i].Fixed {
					fixed = append(fixed, f.String())
				}
				if got.Advisories[i].ID != a.ID || strings.Join(fixed, " ") != strings.Join(a.Fixed, " ") {
					t.Errorf("advisory %d: %+v, file %+v", i, got.Advisories[i], a)
				}
			}
			for _, s := range p.Statuses {
				running, err := ParseVersion(s.Version)
				if err != nil {
					t.Fatal(err)
				}
				status, msg, url := got.Evaluate(running)
				if int(status) != s.Status || msg != s.Message {
					t.Errorf("%s: %d %q, file %d %q", s.Version, status, msg, s.Status, s.Message)
				}
				if url != "" && !strings.HasSuffix(msg, ": "+url) {
					t.Errorf("%s: advisory URL %q not in %q", s.Version, url, msg)
				}
			}
		})
	}
}

func TestVectorInvalidPolicies(t *testing.T) {
	v := loadVectors(t)
	pub, err := ParsePublicKey(v.Keys.Public)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]error{
		"missing": ErrMissing, "malformed": ErrMalformed, "unknown_key": ErrUnknownKey,
		"signature": ErrSignature, "validity": ErrValidity, "expired": ErrExpired,
		"replayed": ErrReplayed, "rollback": ErrRollback,
	}
	for _, p := range v.InvalidPolicies {
		p := p
		t.Run(p.Description, func(t *testing.T) {
			want, ok := reasons[p.Error]
			if !ok {
				t.Fatalf("unknown reason %q in the file", p.Error)
			}
			strs := make([][]byte, len(p.TXTStrings))
			for i, s := range p.TXTStrings {
				strs[i] = s
			}
			seen := Seen{}
			if p.Seen != nil {
				seen = *p.Seen
			}
			_, err := VerifyTXT([][][]byte{strs}, p.Zone, pub, seen, p.Now)
			var perr *PolicyError
			if !errors.Is(err, want) || !errors.As(err, &perr) {
				t.Fatalf("got %v, want %s", err, p.Error)
			}
			t.Logf("%s: %v", p.Error, err)
		})
	}
}

// The checks of §21 in their order: a record without the marker is missing;
// the zero Seen accepts the §11 policy; a seen serial or issued refuses it.
func TestVerifyOrderAndState(t *testing.T) {
	v := loadVectors(t)
	pub, _ := ParsePublicKey(v.Keys.Public)
	p := v.Policies[0]
	strs := [][]byte{}
	for _, s := range p.TXTStrings {
		strs = append(strs, s)
	}
	if _, err := VerifyTXT([][][]byte{{[]byte("v=vc1")}, {[]byte("v=vc2 "), strs[1]}}, "vc.example.com", pub, Seen{}, p.VerifyAt); !errors.Is(err, ErrMissing) {
		t.Errorf("no exact v=vc2 marker: %v", err)
	}
	for _, c := range []struct {
		seen Seen
		now  uint64
		want error
	}{
		{Seen{Serial: p.Inputs.Serial, Issued: p.Issued}, p.VerifyAt, nil},
		{Seen{Serial: p.Inputs.Serial + 1, Issued: p.Issued}, p.VerifyAt, ErrRollback},
		{Seen{Issued: p.Issued + replaySkewSecs}, p.VerifyAt, nil},
		{Seen{Issued: p.Issued + replaySkewSecs + 1}, p.VerifyAt, ErrReplayed},
		{Seen{Issued: p.Expires}, p.VerifyAt, ErrExpired},
		{Seen{}, p.Expires - 1, nil},
		{Seen{}, p.Expires, ErrExpired},
		// A clock behind: a policy issued in the future is accepted.
		{Seen{}, p.Issued - 86400, nil},
	} {
		_, err := VerifyTXT([][][]byte{strs}, "vc.example.com", pub, c.seen, c.now)
		if (c.want == nil && err != nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("seen %+v at %d: %v, want %v", c.seen, c.now, err, c.want)
		}
	}
}
