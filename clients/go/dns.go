package vcheckd

// A minimal stub resolver for one TXT question: the message encoder and
// decoder (RFC 1035), EDNS(0) with a 1232-byte UDP size (RFC 6891), UDP with
// a random id and source port, TCP when the answer is truncated (RFC 7766,
// two-byte length prefix), and the name servers of /etc/resolv.conf.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	typeTXT    = 16
	typeCNAME  = 5
	typeOPT    = 41
	classIN    = 1
	ednsSize   = 1232
	maxMessage = 65535
	headerSize = 12
)

// errBadMessage: a response that does not decode (FuzzParseResponse).
var errBadMessage = errors.New("malformed DNS message")

// buildQuery encodes a query for name (absolute, with the final dot) and
// qtype: RD set, one question, an OPT record offering 1232 bytes.
func buildQuery(id uint16, name string, qtype uint16) ([]byte, error) {
	m := make([]byte, headerSize, headerSize+len(name)+2+4+11)
	binary.BigEndian.PutUint16(m[0:], id)
	binary.BigEndian.PutUint16(m[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(m[4:], 1)      // QDCOUNT
	binary.BigEndian.PutUint16(m[10:], 1)     // ARCOUNT: OPT
	m, err := appendName(m, name)
	if err != nil {
		return nil, err
	}
	m = append(m, byte(qtype>>8), byte(qtype), 0, classIN)
	// OPT: root owner, type 41, class = UDP payload size, TTL 0, no options.
	m = append(m, 0, 0, typeOPT, ednsSize>>8, ednsSize&0xff, 0, 0, 0, 0, 0, 0)
	return m, nil
}

func appendName(m []byte, name string) ([]byte, error) {
	if !strings.HasSuffix(name, ".") {
		return nil, fmt.Errorf("%w: %q is not an absolute name", ErrConfig, name)
	}
	start := len(m)
	if name != "." {
		for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
			if len(label) == 0 || len(label) > maxLabelLength {
				return nil, fmt.Errorf("%w: name %q has a label of %d characters", ErrConfig, name, len(label))
			}
			m = append(m, byte(len(label)))
			m = append(m, label...)
		}
	}
	m = append(m, 0)
	if len(m)-start > 255 {
		return nil, fmt.Errorf("%w: name %q is longer than 255 bytes", ErrConfig, name)
	}
	return m, nil
}

// response is what a check needs from an answer.
type response struct {
	id        uint16
	qr, tc    bool
	opcode    uint8
	rcode     Rcode
	questions int
	qname     string // lower case, absolute
	qtype     uint16
	qclass    uint16
	// txt: the answer's TXT records owned by the question name (or by the
	// target of a CNAME chain from it), each a list of character-strings.
	txt [][][]byte
}

// parseResponse decodes a DNS message. It never panics and bounds its work
// by the message's size.
func parseResponse(msg []byte) (*response, error) {
	if len(msg) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes", errBadMessage, len(msg))
	}
	flags := binary.BigEndian.Uint16(msg[2:])
	r := &response{
		id:     binary.BigEndian.Uint16(msg[0:]),
		qr:     flags&0x8000 != 0,
		opcode: uint8(flags>>11) & 0xf,
		tc:     flags&0x0200 != 0,
		rcode:  Rcode(flags & 0xf),
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	counts := [3]int{int(binary.BigEndian.Uint16(msg[6:])), int(binary.BigEndian.Uint16(msg[8:])), int(binary.BigEndian.Uint16(msg[10:]))}
	off := headerSize
	r.questions = qd
	for i := 0; i < qd; i++ {
		name, next, err := readName(msg, off)
		if err != nil {
			return nil, err
		}
		if next+4 > len(msg) {
			return nil, fmt.Errorf("%w: question truncated", errBadMessage)
		}
		if i == 0 {
			r.qname = name
			r.qtype = binary.BigEndian.Uint16(msg[next:])
			r.qclass = binary.BigEndian.Uint16(msg[next+2:])
		}
		off = next + 4
	}
	type rr struct {
		owner, target string
		typ           uint16
		txt           [][]byte
	}
	var answers []rr
	for section, n := range counts {
		for i := 0; i < n; i++ {
			owner, next, err := readName(msg, off)
			if err != nil {
				return nil, err
			}
			if next+10 > len(msg) {
				return nil, fmt.Errorf("%w: record truncated", errBadMessage)
			}
			typ := binary.BigEndian.Uint16(msg[next:])
			ttl := binary.BigEndian.Uint32(msg[next+4:])
			rdlen := int(binary.BigEndian.Uint16(msg[next+8:]))
			rdata := next + 10
			end := rdata + rdlen
			if end > len(msg) {
				return nil, fmt.Errorf("%w: record data truncated", errBadMessage)
			}
			off = end
			switch {
			case section == 0 && typ == typeTXT:
				strs, err := readStrings(msg[rdata:end])
				if err != nil {
					return nil, err
				}
				answers = append(answers, rr{owner: owner, typ: typ, txt: strs})
			case section == 0 && typ == typeCNAME:
				target, tend, err := readName(msg, rdata)
				if err != nil {
					return nil, err
				}
				if tend != end {
					return nil, fmt.Errorf("%w: CNAME data", errBadMessage)
				}
				answers = append(answers, rr{owner: owner, typ: typ, target: target})
			case section == 2 && typ == typeOPT:
				// Extended RCODE: the upper 8 bits in the TTL's first byte.
				r.rcode |= Rcode(ttl>>24) << 4
			}
		}
	}
	// Follow CNAMEs from the question name (a bounded number of steps).
	owner := r.qname
	for step := 0; step <= len(answers); step++ {
		moved := false
		for _, a := range answers {
			if a.typ == typeCNAME && a.owner == owner && a.target != owner {
				owner, moved = a.target, true
				break
			}
		}
		if !moved {
			break
		}
	}
	for _, a := range answers {
		if a.typ == typeTXT && (a.owner == r.qname || a.owner == owner) {
			r.txt = append(r.txt, a.txt)
		}
	}
	return r, nil
}

// readName reads a possibly compressed name at off: the name in lower case
// (absolute, '.' and '\' in labels escaped) and the offset after it.
func readName(msg []byte, off int) (string, int, error) {
	var b strings.Builder
	next := -1
	wire := 0
	for hops := 0; ; {
		if off >= len(msg) {
			return "", 0, fmt.Errorf("%w: name truncated", errBadMessage)
		}
		c := int(msg[off])
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				if next < 0 {
					next = off + 1
				}
				if b.Len() == 0 {
					return ".", next, nil
				}
				return b.String(), next, nil
			}
			if off+1+c > len(msg) {
				return "", 0, fmt.Errorf("%w: label truncated", errBadMessage)
			}
			wire += 1 + c
			if wire > 254 {
				return "", 0, fmt.Errorf("%w: name longer than 255 bytes", errBadMessage)
			}
			for _, ch := range msg[off+1 : off+1+c] {
				if ch >= 'A' && ch <= 'Z' {
					ch += 'a' - 'A'
				}
				if ch == '.' || ch == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(ch)
			}
			b.WriteByte('.')
			off += 1 + c
		case 0xc0:
			if off+1 >= len(msg) {
				return "", 0, fmt.Errorf("%w: pointer truncated", errBadMessage)
			}
			if next < 0 {
				next = off + 2
			}
			ptr := int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
			// Pointers go backwards (RFC 1035 §4.1.4); a bound on hops stops loops.
			if ptr >= off || hops > 127 {
				return "", 0, fmt.Errorf("%w: bad compression pointer", errBadMessage)
			}
			hops++
			off = ptr
		default:
			return "", 0, fmt.Errorf("%w: unknown label type 0x%02x", errBadMessage, c)
		}
	}
}

// readStrings splits TXT RDATA into its character-strings.
func readStrings(rdata []byte) ([][]byte, error) {
	var out [][]byte
	for len(rdata) > 0 {
		n := int(rdata[0])
		if 1+n > len(rdata) {
			return nil, fmt.Errorf("%w: TXT string truncated", errBadMessage)
		}
		out = append(out, append([]byte(nil), rdata[1:1+n]...))
		rdata = rdata[1+n:]
	}
	return out, nil
}

// matches: the response answers this query (id, QR, opcode, question).
func (r *response) matches(id uint16, qname string, qtype uint16) bool {
	return r.id == id && r.qr && r.opcode == 0 && r.questions == 1 &&
		r.qname == strings.ToLower(qname) && r.qtype == qtype && r.qclass == classIN
}

// resolver asks name servers, in order, one question.
type resolver struct {
	servers  []string // host:port
	timeout  time.Duration
	attempts int
}

// systemResolver reads the name servers and timeout:/attempts: options of a
// resolv.conf file (glibc's defaults: 5 s, 2 attempts, 127.0.0.1).
func systemResolver(path string) (*resolver, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: no name servers given and %v (give Config.Servers)", ErrConfig, err)
	}
	defer f.Close()
	r := &resolver{timeout: 5 * time.Second, attempts: 2}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if ip := net.ParseIP(strings.SplitN(fields[1], "%", 2)[0]); ip != nil {
				r.servers = append(r.servers, net.JoinHostPort(fields[1], "53"))
			}
		case "options":
			for _, o := range fields[1:] {
				if v := strings.TrimPrefix(o, "timeout:"); v != o {
					if n, err := strconv.Atoi(v); err == nil && n >= 1 {
						r.timeout = time.Duration(n) * time.Second
					}
				}
				if v := strings.TrimPrefix(o, "attempts:"); v != o {
					if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= 5 {
						r.attempts = n
					}
				}
			}
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	if len(r.servers) == 0 {
		r.servers = []string{"127.0.0.1:53"}
	}
	return r, nil
}

// serverAddress accepts HOST or HOST:PORT (IPv6 as [ADDR]:PORT or bare).
func serverAddress(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), "53")
}

// queryTXT asks each name server in turn (each attempt) until one answers
// NOERROR or NXDOMAIN-like final codes; a timeout, a network error,
// SERVFAIL or REFUSED moves on to the next. The last failure is returned.
func (r *resolver) queryTXT(ctx context.Context, name string) (txt [][][]byte, err error) {
	for attempt := 0; attempt < r.attempts; attempt++ {
		for _, server := range r.servers {
			if ctx.Err() != nil {
				if err == nil {
					err = &DNSError{Server: server, Name: name, Err: ctx.Err()}
				}
				return nil, err
			}
			var resp *response
			resp, err = r.exchange(ctx, server, name, typeTXT)
			if err != nil {
				continue
			}
			if resp.rcode != RcodeSuccess {
				err = &DNSError{Server: server, Name: name, HasRcode: true, Rcode: resp.rcode}
				if resp.rcode == RcodeServFail || resp.rcode == RcodeRefused {
					continue
				}
				return nil, err
			}
			return resp.txt, nil
		}
	}
	return nil, err
}

// exchange sends one query over UDP, and again over TCP if the answer is
// truncated.
func (r *resolver) exchange(ctx context.Context, server, name string, qtype uint16) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	fail := func(err error) error {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			err = fmt.Errorf("%w after %s (%v)", ErrTimeout, r.timeout, err)
		}
		return &DNSError{Server: server, Name: name, Err: err}
	}
	id, err := randomID()
	if err != nil {
		return nil, fail(err)
	}
	q, err := buildQuery(id, name, qtype)
	if err != nil {
		return nil, err
	}
	resp, err := exchangeUDP(ctx, server, q, id, name, qtype)
	if err != nil {
		return nil, fail(err)
	}
	if !resp.tc {
		return resp, nil
	}
	if id, err = randomID(); err != nil {
		return nil, fail(err)
	}
	binary.BigEndian.PutUint16(q, id)
	resp, err = exchangeTCP(ctx, server, q, id, name, qtype)
	if err != nil {
		return nil, fail(fmt.Errorf("over TCP after a truncated UDP answer: %w", err))
	}
	return resp, nil
}

func randomID() (uint16, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b[:]), nil
}

// exchangeUDP sends from a fresh socket (the kernel picks a random source
// port) and waits for an answer that matches the id and question; anything
// else arriving on the socket is ignored.
func exchangeUDP(ctx context.Context, server string, q []byte, id uint16, name string, qtype uint16) (*response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer watch(ctx, conn)()
	if _, err := conn.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, maxMessage)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		resp, err := parseResponse(buf[:n])
		if err != nil || !resp.matches(id, name, qtype) {
			continue
		}
		return resp, nil
	}
}

// exchangeTCP: one query with its two-byte length, one answer.
func exchangeTCP(ctx context.Context, server string, q []byte, id uint16, name string, qtype uint16) (*response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	defer watch(ctx, conn)()
	framed := make([]byte, 2+len(q))
	binary.BigEndian.PutUint16(framed, uint16(len(q)))
	copy(framed[2:], q)
	if _, err := conn.Write(framed); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	resp, err := parseResponse(buf)
	if err != nil {
		return nil, err
	}
	if !resp.matches(id, name, qtype) {
		return nil, fmt.Errorf("%w: the TCP answer does not match the query", errBadMessage)
	}
	return resp, nil
}

// watch makes conn's reads and writes fail once ctx is done (its deadline or
// a cancellation); the returned function stops watching.
func watch(ctx context.Context, conn net.Conn) func() {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = conn.SetDeadline(time.Unix(1, 0))
		case <-done:
		}
	}()
	return func() { close(done) }
}
