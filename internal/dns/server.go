// Package dns is a small authoritative DNS responder for one zone whose
// names a function answers: the owner-set host names of a sending cluster
// (docs/cluster.md, "Owner-set host names"), each resolving to the
// addresses of its live senders in order. It answers A and AAAA queries
// over UDP; its answers are small (a few addresses), so they are never
// truncated and TCP is not needed.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Lookup answers a name of the zone (lower case, without the final dot):
// its addresses in the order clients should try them, and whether the
// name exists (false: NXDOMAIN).
type Lookup func(name string) (addrs []netip.Addr, ok bool)

// Server answers the names of Zone with Lookup.
type Server struct {
	// Zone is the domain served (e.g. "senders.example"); queries for
	// other names are refused.
	Zone string
	// Lookup answers the names of the zone (required).
	Lookup Lookup
	// TTL of the answers (5 s when 0): how long a client may keep an
	// address of a sender that died.
	TTL time.Duration
	// Log receives serving errors (discarded when nil).
	Log *slog.Logger
}

// maxQuery bounds a query datagram (EDNS clients advertise more, but a
// query with one question is far smaller).
const maxQuery = 1232

// ServeUDP answers the queries arriving at pc until ctx ends; it closes pc.
func (s *Server) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	if s.Lookup == nil {
		return errors.New("dns: no Lookup")
	}
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	buf := make([]byte, maxQuery+1)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("dns: read: %w", err)
		}
		if n > maxQuery {
			s.logf("query too long", "from", addr.String(), "bytes", n)
			continue
		}
		resp, err := s.Answer(buf[:n])
		if err != nil {
			s.logf("bad query", "from", addr.String(), "err", err)
		}
		if resp == nil {
			continue
		}
		if _, err := pc.WriteTo(resp, addr); err != nil && ctx.Err() == nil {
			s.logf("write", "to", addr.String(), "err", err)
		}
	}
}

func (s *Server) logf(msg string, args ...any) {
	if s.Log != nil {
		s.Log.Debug("dns: "+msg, args...)
	}
}

// Answer returns the response to one query message, or nil when the
// message deserves none (a response, or too mangled to carry an ID). A
// non-nil error says why a query got an error response.
func (s *Server) Answer(msg []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if h.Response {
		return nil, errors.New("a response, not a query")
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}
	fail := func(rc dnsmessage.RCode, q *dnsmessage.Question, why error) ([]byte, error) {
		rh.RCode = rc
		rh.Authoritative = rc == dnsmessage.RCodeNameError
		b := dnsmessage.NewBuilder(make([]byte, 0, 128), rh)
		if q != nil {
			if err := b.StartQuestions(); err == nil {
				b.Question(*q)
			}
		}
		out, err := b.Finish()
		if err != nil {
			return nil, err
		}
		return out, why
	}
	if h.OpCode != 0 {
		return fail(dnsmessage.RCodeNotImplemented, nil, fmt.Errorf("opcode %d", h.OpCode))
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return fail(dnsmessage.RCodeFormatError, nil, fmt.Errorf("question: %w", err))
	}
	if len(qs) != 1 {
		return fail(dnsmessage.RCodeFormatError, nil, fmt.Errorf("%d questions", len(qs)))
	}
	q := qs[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	zone := strings.ToLower(strings.Trim(s.Zone, "."))
	if q.Class != dnsmessage.ClassINET || (name != zone && !strings.HasSuffix(name, "."+zone)) {
		return fail(dnsmessage.RCodeRefused, &q, nil)
	}
	var addrs []netip.Addr
	ok := name == zone // the apex exists, with no addresses
	if !ok {
		addrs, ok = s.Lookup(name)
	}
	if !ok {
		return fail(dnsmessage.RCodeNameError, &q, nil)
	}
	rh.Authoritative = true
	b := dnsmessage.NewBuilder(make([]byte, 0, 256), rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: uint32(ttl / time.Second)}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6():
			err = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
