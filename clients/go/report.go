package vcheckd

// The report: anonymized ids (PROTOCOL §17), the padded plaintext, the HPKE
// frame, the effort proof and the report id (§18), and the query name (§6,
// §19). Pure functions of their inputs; randomness and time come from the
// caller.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

const (
	frameFormat       = 0x02
	smallPlaintext    = 56
	largePlaintext    = 74
	maxSmallVersion   = 18
	maxVersionLength  = 36
	flagWithheld      = 0x01
	proofSize         = 4
	maxLabels         = 4
	maxLabelLength    = 63
	maxNameLength     = 253
	reportIDSize      = 12
	reportInfoContext = "vcheckd v2 report"
	effortContext     = "vcheckd v2 effort"
	reportIDContext   = "vcheckd v2 report id"
)

// Argon2id parameters of the cluster secret (PROTOCOL §17).
const (
	argonTime    = 3
	argonMemory  = 65536 // KiB
	argonThreads = 1
)

// clusterSalt is SHA-256("vcheckd v2 cluster salt" 0x00 zone)[..16].
func clusterSalt(zone string) []byte {
	h := sha256.Sum256([]byte("vcheckd v2 cluster salt\x00" + zone))
	return h[:16]
}

// clusterSecret is the Argon2id of the real cluster id: 64 MiB and a
// fraction of a second, once per client.
func clusterSecret(zone, clusterID string) []byte {
	return argon2.IDKey([]byte(clusterID), clusterSalt(zone), argonTime, argonMemory, argonThreads, 32)
}

// anonymizedIDs are the cluster and node ids a report carries.
func anonymizedIDs(secret []byte, nodeID string) (cluster, node [16]byte) {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("vcheckd v2 cluster"))
	copy(cluster[:], m.Sum(nil))
	m = hmac.New(sha256.New, secret)
	m.Write([]byte("vcheckd v2 node\x00" + nodeID))
	copy(node[:], m.Sum(nil))
	return cluster, node
}

// identity is the ids of a report; nil is identity withheld.
type identity struct{ cluster, node [16]byte }

// buildPlaintext is timestamp | flags | cluster | node | version length |
// version | zeros, padded to 56 or 74 bytes.
func buildPlaintext(timestamp uint64, id *identity, version string) ([]byte, error) {
	if timestamp > 0xffffffff {
		return nil, fmt.Errorf("%w: a timestamp past 2106-02-07 cannot be sent", ErrConfig)
	}
	size := smallPlaintext
	switch {
	case len(version) > maxVersionLength:
		return nil, fmt.Errorf("%w: version %q is longer than %d bytes", ErrConfig, version, maxVersionLength)
	case len(version) > maxSmallVersion:
		size = largePlaintext
	}
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p[0:4], uint32(timestamp))
	if id == nil {
		p[4] = flagWithheld
	} else {
		copy(p[5:21], id.cluster[:])
		copy(p[21:37], id.node[:])
	}
	p[37] = byte(len(version))
	copy(p[38:], version)
	return p, nil
}

// frame is a sealed report and what was computed on the way.
type frame struct {
	sealed
	// bytes is the whole frame, proof included.
	bytes    []byte
	proof    uint32
	effort   int
	reportID []byte
}

// sealReport seals the plaintext to the policy's key for its epoch: format |
// key id | epoch | enc | ciphertext | proof (zero until searchProof).
func sealReport(zone string, keyID uint8, epoch uint16, sealKey []byte, ikmE, plaintext []byte) (*frame, error) {
	header := []byte{frameFormat, keyID, byte(epoch >> 8), byte(epoch)}
	s, err := hpkeSeal(sealKey, ikmE, []byte(reportInfoContext+"\x00"+zone), header, plaintext)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(header)+len(s.enc)+len(s.ciphertext)+proofSize)
	b = append(b, header...)
	b = append(b, s.enc...)
	b = append(b, s.ciphertext...)
	b = append(b, make([]byte, proofSize)...)
	id := sha256.Sum256(append([]byte(reportIDContext), s.enc...))
	return &frame{sealed: *s, bytes: b, reportID: id[:reportIDSize]}, nil
}

// effortOf is the number of leading zero bits of SHA-256("vcheckd v2
// effort" 0x00 || frame).
func effortOf(frame []byte) int {
	h := sha256.New()
	h.Write([]byte(effortContext + "\x00"))
	h.Write(frame)
	return leadingZeros(h.Sum(nil))
}

func leadingZeros(d []byte) int {
	n := 0
	for _, b := range d {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// searchProof tries proofs 0, 1, 2, ... until one reaches target or the
// budget (wall time) is spent, and sets the best one found into the frame.
// The prefix is hashed once; each try costs two SHA-256 compressions.
func (f *frame) searchProof(ctx context.Context, target int, budget time.Duration) {
	body := f.bytes[:len(f.bytes)-proofSize]
	h := sha256.New()
	h.Write([]byte(effortContext + "\x00"))
	h.Write(body)
	mid, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic(err) // crypto/sha256 always marshals
	}
	deadline := time.Now().Add(budget)
	var sum [sha256.Size]byte
	var proof [proofSize]byte
	best, bestEffort := uint32(0), -1
	for p := uint32(0); ; p++ {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(mid); err != nil {
			panic(err)
		}
		binary.BigEndian.PutUint32(proof[:], p)
		h.Write(proof[:])
		e := leadingZeros(h.Sum(sum[:0]))
		if e > bestEffort {
			best, bestEffort = p, e
		}
		if bestEffort >= target || p == ^uint32(0) {
			break
		}
		if p&0x3ff == 0x3ff && (time.Now().After(deadline) || ctx.Err() != nil) {
			break
		}
	}
	f.proof, f.effort = best, bestEffort
	binary.BigEndian.PutUint32(f.bytes[len(f.bytes)-proofSize:], best)
}

var base32Lower = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// queryName is the frame in base32 (lower case, no padding), split into the
// fewest labels of at most 63 characters, as even as possible (the first
// ones one longer), then the zone and the final dot (PROTOCOL §6, §19).
func queryName(frame []byte, zone string) (labels []string, name string, err error) {
	text := base32Lower.EncodeToString(frame)
	k := (len(text) + maxLabelLength - 1) / maxLabelLength
	if k > maxLabels {
		return nil, "", fmt.Errorf("%w: a %d-byte frame needs %d labels, at most %d fit", ErrConfig, len(frame), k, maxLabels)
	}
	base, extra := len(text)/k, len(text)%k
	for i := 0; i < k; i++ {
		n := base
		if i < extra {
			n++
		}
		labels = append(labels, text[:n])
		text = text[n:]
	}
	name = strings.Join(labels, ".") + "." + zone
	if len(name) > maxNameLength {
		return nil, "", fmt.Errorf("%w: the report name would have %d characters, at most %d: use a shorter zone or version", ErrConfig, len(name), maxNameLength)
	}
	return labels, name + ".", nil
}
