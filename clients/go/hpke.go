package vcheckd

// HPKE (RFC 9180) in base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
// and ChaCha20-Poly1305: only what sealing one message needs (PROTOCOL §18).

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

const (
	kemID  = 0x0020
	kdfID  = 0x0001
	aeadID = 0x0003
)

var (
	kemSuiteID  = []byte{'K', 'E', 'M', kemID >> 8, kemID & 0xff}
	hpkeSuiteID = []byte{'H', 'P', 'K', 'E', kemID >> 8, kemID & 0xff, kdfID >> 8, kdfID & 0xff, aeadID >> 8, aeadID & 0xff}
)

func labeledExtract(suite []byte, salt []byte, label string, ikm []byte) []byte {
	in := make([]byte, 0, 7+len(suite)+len(label)+len(ikm))
	in = append(in, "HPKE-v1"...)
	in = append(in, suite...)
	in = append(in, label...)
	in = append(in, ikm...)
	return hkdf.Extract(sha256.New, in, salt)
}

func labeledExpand(suite []byte, prk []byte, label string, info []byte, length int) []byte {
	in := make([]byte, 2, 9+len(suite)+len(label)+len(info))
	binary.BigEndian.PutUint16(in, uint16(length))
	in = append(in, "HPKE-v1"...)
	in = append(in, suite...)
	in = append(in, label...)
	in = append(in, info...)
	out := make([]byte, length)
	if _, err := io.ReadFull(hkdf.Expand(sha256.New, prk, in), out); err != nil {
		panic(err) // lengths here are far below HKDF's limit
	}
	return out
}

// deriveKeyPair is RFC 9180 §7.1.3 DeriveKeyPair for X25519.
func deriveKeyPair(ikm []byte) (sk, pk []byte) {
	prk := labeledExtract(kemSuiteID, nil, "dkp_prk", ikm)
	sk = labeledExpand(kemSuiteID, prk, "sk", nil, 32)
	pk, err := curve25519.X25519(sk, curve25519.Basepoint)
	if err != nil {
		panic(err) // the base point is never low order
	}
	return sk, pk
}

// sealed holds every intermediate of one seal (the vectors list them).
type sealed struct {
	skE, enc, sharedSecret, key, baseNonce, ciphertext []byte
}

// hpkeSeal seals plaintext to pkR with the ephemeral key derived from ikmE
// (32 bytes from the operating system's random source, except in tests).
func hpkeSeal(pkR, ikmE, info, aad, plaintext []byte) (*sealed, error) {
	skE, enc := deriveKeyPair(ikmE)
	dh, err := curve25519.X25519(skE, pkR)
	if err != nil {
		return nil, fmt.Errorf("the policy's seal key: %w", err)
	}
	kemContext := append(append([]byte{}, enc...), pkR...)
	eaePRK := labeledExtract(kemSuiteID, nil, "eae_prk", dh)
	shared := labeledExpand(kemSuiteID, eaePRK, "shared_secret", kemContext, 32)

	pskIDHash := labeledExtract(hpkeSuiteID, nil, "psk_id_hash", nil)
	infoHash := labeledExtract(hpkeSuiteID, nil, "info_hash", info)
	ctx := append(append([]byte{0x00}, pskIDHash...), infoHash...) // mode_base
	secret := labeledExtract(hpkeSuiteID, shared, "secret", nil)
	key := labeledExpand(hpkeSuiteID, secret, "key", ctx, chacha20poly1305.KeySize)
	nonce := labeledExpand(hpkeSuiteID, secret, "base_nonce", ctx, chacha20poly1305.NonceSize)

	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, err
	}
	// Sequence number 0: the nonce is base_nonce.
	ct := aead.Seal(nil, nonce, plaintext, aad)
	return &sealed{skE: skE, enc: enc, sharedSecret: shared, key: key, baseNonce: nonce, ciphertext: ct}, nil
}
