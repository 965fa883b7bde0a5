package vcheckd

// The client state of PROTOCOL §21: per zone and key id, the newest serial
// and issued accepted and the last verified policy. The file is the one
// `vcheckd check` keeps, in the same format, so that both clients on one
// host share the default path:
//
//	{"version": 1, "policies": [{"zone": "vc.example.com", "key_id": 5,
//	  "serial": 2026112301, "issued": 1796677200, "policy": "<wire, hex>"}]}
//
// It is written atomically (a temp file in the same folder, then rename).

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const stateVersion = 1

type stateEntry struct {
	Zone   string `json:"zone"`
	KeyID  uint8  `json:"key_id"`
	Serial uint32 `json:"serial"`
	Issued uint64 `json:"issued"`
	// Policy is the last verified policy's wire form in hex ("" if none).
	Policy string `json:"policy,omitempty"`
}

type stateFile struct {
	Version  int          `json:"version"`
	Policies []stateEntry `json:"policies"`
}

// defaultStatePath is PROTOCOL §21's: VCHECKD_STATE, else
// $STATE_DIRECTORY/client-state.json, else
// $XDG_STATE_HOME/vcheckd/client-state.json, else
// ~/.local/state/vcheckd/client-state.json; "" if none is set.
func defaultStatePath(getenv func(string) string) string {
	if p := getenv("VCHECKD_STATE"); p != "" {
		return p
	}
	if d := getenv("STATE_DIRECTORY"); d != "" {
		// systemd lists several folders separated by ':' when the unit
		// names several; the first is the service's own.
		return filepath.Join(strings.SplitN(d, ":", 2)[0], "client-state.json")
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "vcheckd", "client-state.json")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "vcheckd", "client-state.json")
	}
	return ""
}

func loadState(path string) (*stateFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &stateFile{Version: stateVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	var s stateFile
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %s is not a client state file: %v (move it away to start afresh)", ErrState, path, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%w: %s has format version %d, this client reads %d", ErrState, path, s.Version, stateVersion)
	}
	return &s, nil
}

func (s *stateFile) entry(zone string, keyID uint8) *stateEntry {
	for i := range s.Policies {
		if s.Policies[i].Zone == zone && s.Policies[i].KeyID == keyID {
			return &s.Policies[i]
		}
	}
	s.Policies = append(s.Policies, stateEntry{Zone: zone, KeyID: keyID})
	return &s.Policies[len(s.Policies)-1]
}

func (e *stateEntry) seen() Seen { return Seen{Serial: e.Serial, Issued: e.Issued} }

// accept takes a verified policy: max of serial and issued, and the policy
// itself if it is the newest issued (PROTOCOL §21).
func (e *stateEntry) accept(p *Policy) {
	if p.Serial > e.Serial {
		e.Serial = p.Serial
	}
	if p.Issued >= e.Issued {
		e.Issued = p.Issued
		e.Policy = hex.EncodeToString(p.Wire)
	}
}

// kept is the entry's last verified policy, checked again (signature, form
// and validity, not freshness); nil if there is none or it does not check.
func (e *stateEntry) kept(zone string, key PublicKey) *Policy {
	if e.Policy == "" {
		return nil
	}
	wire, err := hex.DecodeString(e.Policy)
	if err != nil {
		return nil
	}
	p, err := decodePolicy(wire, zone, key)
	if err != nil {
		return nil
	}
	return p
}

func saveState(path string, s *stateFile) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrState, err)
	}
	if err := writeAtomic(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w: %v (a state that cannot be saved would let a replayed policy in)", ErrState, err)
	}
	return nil
}

// writeAtomic writes data to a temp file beside path, syncs it and renames
// it over path, creating the folder (0700) if needed.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
