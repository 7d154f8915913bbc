package dns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func testServer() *Server {
	sets := map[string][]netip.Addr{
		"a--b.senders.test": {netip.MustParseAddr("127.0.0.12"), netip.MustParseAddr("127.0.0.11")},
		"a--c.senders.test": {netip.MustParseAddr("127.0.0.11"), netip.MustParseAddr("::1")},
		"gone.senders.test": nil, // exists, no live member
	}
	return &Server{Zone: "senders.test.", TTL: 3 * time.Second, Lookup: func(name string) ([]netip.Addr, bool) {
		a, ok := sets[name]
		return a, ok
	}}
}

type query struct {
	name   string
	typ    dnsmessage.Type
	class  dnsmessage.Class
	opcode dnsmessage.OpCode
	extraQ bool // a second question
	resp   bool // the response bit set
}

func (q query) pack(t *testing.T) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x4242, RecursionDesired: true, OpCode: q.opcode, Response: q.resp})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	class := q.class
	if class == 0 {
		class = dnsmessage.ClassINET
	}
	n := 1
	if q.extraQ {
		n = 2
	}
	for range n {
		if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q.name), Type: q.typ, Class: class}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestAnswer(t *testing.T) {
	s := testServer()
	for _, c := range []struct {
		name  string
		q     query
		rcode dnsmessage.RCode
		want  []string // answers in order
	}{
		{"A in order", query{name: "a--b.senders.test.", typ: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, []string{"127.0.0.12", "127.0.0.11"}},
		{"case-insensitive", query{name: "A--B.Senders.TEST.", typ: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, []string{"127.0.0.12", "127.0.0.11"}},
		{"A of a mixed set", query{name: "a--c.senders.test.", typ: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, []string{"127.0.0.11"}},
		{"AAAA of a mixed set", query{name: "a--c.senders.test.", typ: dnsmessage.TypeAAAA}, dnsmessage.RCodeSuccess, []string{"::1"}},
		{"AAAA of a v4 set: no data", query{name: "a--b.senders.test.", typ: dnsmessage.TypeAAAA}, dnsmessage.RCodeSuccess, nil},
		{"MX: no data", query{name: "a--b.senders.test.", typ: dnsmessage.TypeMX}, dnsmessage.RCodeSuccess, nil},
		{"no live member: no data", query{name: "gone.senders.test.", typ: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, nil},
		{"apex", query{name: "senders.test.", typ: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, nil},
		{"unknown name", query{name: "x--y.senders.test.", typ: dnsmessage.TypeA}, dnsmessage.RCodeNameError, nil},
		{"outside the zone", query{name: "example.com.", typ: dnsmessage.TypeA}, dnsmessage.RCodeRefused, nil},
		{"zone as a suffix only", query{name: "xsenders.test.", typ: dnsmessage.TypeA}, dnsmessage.RCodeRefused, nil},
		{"class CH", query{name: "a--b.senders.test.", typ: dnsmessage.TypeA, class: dnsmessage.ClassCHAOS}, dnsmessage.RCodeRefused, nil},
		{"two questions", query{name: "a--b.senders.test.", typ: dnsmessage.TypeA, extraQ: true}, dnsmessage.RCodeFormatError, nil},
		{"update opcode", query{name: "a--b.senders.test.", typ: dnsmessage.TypeA, opcode: 5}, dnsmessage.RCodeNotImplemented, nil},
	} {
		out, _ := s.Answer(c.q.pack(t))
		if out == nil {
			t.Errorf("%s: no response", c.name)
			continue
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Errorf("%s: response does not parse: %v", c.name, err)
			continue
		}
		if m.ID != 0x4242 || !m.Response || !m.RecursionDesired || m.RCode != c.rcode {
			t.Errorf("%s: header %+v, want rcode %v", c.name, m.Header, c.rcode)
		}
		var got []string
		for _, a := range m.Answers {
			if a.Header.TTL != 3 {
				t.Errorf("%s: TTL %d", c.name, a.Header.TTL)
			}
			switch r := a.Body.(type) {
			case *dnsmessage.AResource:
				got = append(got, netip.AddrFrom4(r.A).String())
			case *dnsmessage.AAAAResource:
				got = append(got, netip.AddrFrom16(r.AAAA).String())
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: answers %v, want %v", c.name, got, c.want)
		}
		if c.rcode == dnsmessage.RCodeSuccess && (!m.Authoritative || len(m.Questions) != 1) {
			t.Errorf("%s: not authoritative or no question: %+v", c.name, m)
		}
	}
	// No response to a response, nor to what has no header.
	if out, _ := s.Answer(query{name: "a--b.senders.test.", typ: dnsmessage.TypeA, resp: true}.pack(t)); out != nil {
		t.Error("answered a response")
	}
	if out, err := s.Answer([]byte{1, 2, 3}); out != nil || err == nil {
		t.Errorf("short message: %v %v", out, err)
	}
}

// TestResolverOverUDP: Go's own resolver, pointed at the server, gets every
// address of a name in the server's order.
func TestResolverOverUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- testServer().ServeUDP(ctx, pc) }()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
	defer lcancel()
	got, err := r.LookupHost(lctx, "a--b.senders.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.12", "127.0.0.11"}; !slices.Equal(got, want) {
		t.Errorf("LookupHost: %v, want %v", got, want)
	}
	if _, err := r.LookupHost(lctx, "nope.senders.test"); err == nil || !strings.Contains(err.Error(), "no such host") {
		t.Errorf("unknown name: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeUDP: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUDP did not stop with its context")
	}
}

// FuzzAnswer: no input makes Answer panic, and every response parses and
// echoes the query's ID.
func FuzzAnswer(f *testing.F) {
	s := testServer()
	for _, q := range []query{
		{name: "a--b.senders.test.", typ: dnsmessage.TypeA},
		{name: "senders.test.", typ: dnsmessage.TypeAAAA},
		{name: "example.com.", typ: dnsmessage.TypeA, extraQ: true},
	} {
		f.Add(q.pack(&testing.T{}))
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, _ := s.Answer(msg)
		if out == nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("response does not parse: %v", err)
		}
		if len(msg) >= 2 && m.ID != uint16(msg[0])<<8|uint16(msg[1]) {
			t.Fatalf("ID %x for a query with %x", m.ID, msg[:2])
		}
	})
}
