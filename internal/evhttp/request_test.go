package evhttp

import (
	"strings"
	"testing"
)

func TestHeadEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET", 27},
		{"GET / HTTP/1.1\nHost: a\n\n", 24},
		{"GET / HTTP/1.1\r\nHost: a\r\n", -1},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r", -1},
		{"GET / HTTP/1.1\r\n", -1},
		{"", -1},
	} {
		if got := headEnd([]byte(tc.in)); got != tc.want {
			t.Errorf("headEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		check    func(*head) bool
	}{
		{"get", "GET /a/b?c=d HTTP/1.1\r\nHost: h:1\r\nuser-agent: x\r\nCMCD-Request: bl=100\r\n\r\n", func(h *head) bool {
			return h.method == "GET" && h.url.Path == "/a/b" && h.url.RawQuery == "c=d" && h.host == "h:1" &&
				h.header.Get("User-Agent") == "x" && h.header.Get("Cmcd-Request") == "bl=100" && !h.close && !h.handoff
		}},
		{"head 1.0", "HEAD / HTTP/1.0\r\n\r\n", func(h *head) bool { return h.method == "HEAD" && h.minor == 0 && h.close }},
		{"close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n", func(h *head) bool { return h.close }},
		{"absolute", "GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n", func(h *head) bool { return h.url.Path == "/x" && h.host == "a" }},
		{"post", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", func(h *head) bool { return h.handoff }},
		{"get with body", "GET /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", func(h *head) bool { return h.handoff }},
		{"get length 0", "GET /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", func(h *head) bool { return !h.handoff }},
		{"chunked get", "GET /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", func(h *head) bool { return h.handoff }},
		{"upgrade", "GET /p HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", func(h *head) bool { return h.handoff }},
		{"options", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", func(h *head) bool { return h.handoff }},
		{"repeated", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n", func(h *head) bool { return strings.Join(h.header["X-A"], ",") == "1,2" }},
		{"trim", "GET / HTTP/1.1\r\nHost:   a \t\r\n\r\n", func(h *head) bool { return h.host == "a" }},
	} {
		h, err := parseHead([]byte(tc.in))
		if err != nil || !tc.check(h) {
			t.Errorf("%s: %+v %v", tc.name, h, err)
		}
	}
}

// FuzzParseHead: any input is parsed or refused with a status, never a
// panic; a parsed request has a method, a target and (when it is served
// here) a URL.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /x?y HTTP/1.0\r\n\r\n",
		"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n x\n\n",
		"GET http://a/b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n := headEnd(b)
		if n < 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("headEnd %d past %d bytes", n, len(b))
		}
		h, err := parseHead(b[:n])
		if err != nil {
			he, ok := err.(*headError)
			if !ok || he.status < 400 || he.status > 599 {
				t.Fatalf("error %v is not a head error with a status", err)
			}
			return
		}
		if h.method == "" || h.target == "" || (!h.handoff && h.url == nil) {
			t.Fatalf("parsed %+v", h)
		}
	})
}
