package vcheckd

import (
	"errors"
	"fmt"
)

// Reasons a policy is refused (PROTOCOL §21, in the order they are checked).
// A refusal is a *PolicyError that unwraps to one of these:
//
//	errors.Is(err, vcheckd.ErrExpired)
var (
	// ErrMissing: no TXT record whose first string is exactly "v=vc2".
	ErrMissing = errors.New("no v=vc2 policy in the answer (is the zone delegated to vcheckd?)")
	// ErrMalformed: too short, a wrong format byte, or a body that breaks §20.
	ErrMalformed = errors.New("malformed policy")
	// ErrUnknownKey: signed with another key id than the client carries.
	ErrUnknownKey = errors.New("policy for another key id")
	// ErrSignature: forged, altered, or signed for another zone.
	ErrSignature = errors.New("policy signature does not verify")
	// ErrValidity: expires not after issued, or more than eight days after it.
	ErrValidity = errors.New("policy validity out of bounds")
	// ErrExpired: past its expiry, or older than a policy already accepted.
	ErrExpired = errors.New("policy expired (check this host's clock)")
	// ErrReplayed: issued more than two hours before the newest accepted.
	ErrReplayed = errors.New("policy replayed (older than one accepted before)")
	// ErrRollback: a lower serial than one accepted before.
	ErrRollback = errors.New("policy serial rolled back")
)

// Other failures of a check.
var (
	// ErrDisabled: DISABLE_VERSION_CHECK is set; nothing was sent.
	ErrDisabled = errors.New("version check disabled (DISABLE_VERSION_CHECK)")
	// ErrTimeout: no name server answered in time (a *DNSError unwraps to it).
	ErrTimeout = errors.New("no answer in time")
	// ErrState: the client state could not be read or saved; a check that
	// cannot save its state fails (a lost state would let a replay in).
	ErrState = errors.New("client state")
	// ErrConfig: the Config given to New is incomplete or wrong.
	ErrConfig = errors.New("vcheckd client configuration")
)

// PolicyError is a refused policy: Reason is one of ErrMissing,
// ErrMalformed, ErrUnknownKey, ErrSignature, ErrValidity, ErrExpired,
// ErrReplayed, ErrRollback.
type PolicyError struct {
	Reason error
	// Name is the query name whose answer carried the policy ("" when the
	// policy was given directly).
	Name   string
	Detail string
}

func (e *PolicyError) Error() string {
	s := "vcheckd: " + e.Reason.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Name != "" {
		s += " (answer to " + e.Name + ")"
	}
	return s
}

func (e *PolicyError) Unwrap() error { return e.Reason }

func policyErr(reason error, format string, args ...interface{}) *PolicyError {
	return &PolicyError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Rcode is a DNS response code (RFC 1035 §4.1.1, RFC 6891 extended codes).
type Rcode uint16

// The response codes a check may meet.
const (
	RcodeSuccess  Rcode = 0
	RcodeFormErr  Rcode = 1
	RcodeServFail Rcode = 2
	RcodeNXDomain Rcode = 3
	RcodeNotImp   Rcode = 4
	RcodeRefused  Rcode = 5
	RcodeBadVers  Rcode = 16
)

var rcodeNames = map[Rcode]string{
	RcodeSuccess: "NOERROR", RcodeFormErr: "FORMERR", RcodeServFail: "SERVFAIL",
	RcodeNXDomain: "NXDOMAIN", RcodeNotImp: "NOTIMP", RcodeRefused: "REFUSED", RcodeBadVers: "BADVERS",
}

func (r Rcode) String() string {
	if s, ok := rcodeNames[r]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", uint16(r))
}

// DNSError is a query that got no usable answer: either an error response
// (HasRcode, Rcode) or no response at all (Err: a timeout, which unwraps to
// ErrTimeout, or a network error).
type DNSError struct {
	Server   string
	Name     string
	HasRcode bool
	Rcode    Rcode
	Err      error
}

func (e *DNSError) Error() string {
	if e.HasRcode {
		return fmt.Sprintf("vcheckd: name server %s answered %s for %s", e.Server, e.Rcode, e.Name)
	}
	return fmt.Sprintf("vcheckd: name server %s, query %s: %v", e.Server, e.Name, e.Err)
}

func (e *DNSError) Unwrap() error { return e.Err }
