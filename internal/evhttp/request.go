package evhttp

import (
	"bytes"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// head is a parsed HTTP/1.x request head.
type head struct {
	method       string
	target       string
	url          *url.URL
	major, minor int
	header       http.Header
	host         string
	close        bool // the connection ends after this request
	// handoff: the request has a body or asks for something only
	// net/http does (Expect, Upgrade): the connection goes to the
	// fallback server.
	handoff bool
}

// headError is a malformed request head: status and reason for the reply.
type headError struct {
	status int
	reason string
}

func (e *headError) Error() string { return fmt.Sprintf("%d %s", e.status, e.reason) }

func badRequest(reason string) *headError { return &headError{http.StatusBadRequest, reason} }

// headEnd returns the length of the request head at the start of b (up to
// and including the empty line), or -1 when b holds no complete head.
// Lines end in CRLF or a bare LF.
func headEnd(b []byte) int {
	i := 0
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		case i >= len(b) || (i+1 == len(b) && b[i] == '\r'):
			return -1
		}
	}
}

// parseHead parses a complete request head (as delimited by headEnd). It
// accepts what net/http's server accepts for bodiless requests and refuses
// the rest with 400 (or 505 for another HTTP version); a request with a
// body, Expect or Upgrade is marked handoff, not parsed further.
func parseHead(b []byte) (*head, error) {
	line, rest, ok := cutLine(b)
	if !ok {
		return nil, badRequest("malformed request line")
	}
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return nil, badRequest("malformed request line")
	}
	h := &head{}
	method, target, proto := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	if !isToken(method) {
		return nil, badRequest("invalid method")
	}
	switch string(proto) {
	case "HTTP/1.1":
		h.major, h.minor = 1, 1
	case "HTTP/1.0":
		h.major, h.minor = 1, 0
	default:
		if bytes.HasPrefix(proto, []byte("HTTP/")) {
			return nil, &headError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
		}
		return nil, badRequest("malformed HTTP version")
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return nil, badRequest("invalid request target")
		}
	}
	h.method = methodString(method)
	h.target = string(target)
	h.header = make(http.Header, 8)
	hosts := 0
	for len(rest) > 0 {
		line, rest, ok = cutLine(rest)
		if !ok {
			return nil, badRequest("malformed header")
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, badRequest("obsolete line folding")
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return nil, badRequest("malformed header field name")
		}
		key := headerKey(line[:colon])
		val := bytes.Trim(line[colon+1:], " \t")
		for _, c := range val {
			if c < ' ' && c != '\t' || c == 0x7f {
				return nil, badRequest("invalid header field value")
			}
		}
		v := string(val)
		h.header[key] = append(h.header[key], v)
		switch key {
		case "Host":
			hosts++
			h.host = v
		case "Connection":
			if hasToken(v, "close") {
				h.close = true
			}
		case "Content-Length":
			if n, err := strconv.ParseUint(v, 10, 63); err != nil || n > 0 {
				h.handoff = true
			}
		case "Transfer-Encoding", "Expect", "Upgrade":
			h.handoff = true
		}
	}
	if h.minor == 0 {
		// HTTP/1.0: one request per connection (no keep-alive
		// negotiation on this server).
		h.close = true
	}
	if h.handoff || (h.method != http.MethodGet && h.method != http.MethodHead) {
		h.handoff = true
		return h, nil
	}
	if hosts > 1 {
		return nil, badRequest("too many Host headers")
	}
	if hosts == 0 && h.minor == 1 {
		return nil, badRequest("missing required Host header")
	}
	u, err := url.ParseRequestURI(h.target)
	if err != nil {
		return nil, badRequest("invalid request target")
	}
	h.url = u
	if h.host == "" {
		h.host = u.Host
	}
	return h, nil
}

// cutLine splits b at its first line end (CRLF or LF).
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, nil, false
	}
	line, rest = b[:i], b[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, rest, true
}

// tokenChars are the characters of an RFC 9110 token.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-32] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok (case
// insensitively).
func hasToken(v, tok string) bool {
	for item := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.Trim(item, " \t"), tok) {
			return true
		}
	}
	return false
}

// commonKeys are the canonical header names a player or cache sends most:
// returned without allocating.
var commonKeys = []string{
	"Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Connection", "Range",
	"If-None-Match", "If-Modified-Since", "If-Range", "Referer", "Origin", "Cookie", "Authorization",
	"Cache-Control", "Pragma", "Content-Length", "Cmcd-Request", "Cmcd-Object", "Cmcd-Session",
	"Cmcd-Status", "Sluice-Pacing", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-Dest",
	"Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Dnt", "Priority", "X-Forwarded-For",
	"Via", "Te", "Upgrade", "Expect", "Transfer-Encoding",
}

// headerKey is the canonical form of a header field name.
func headerKey(b []byte) string {
	for _, k := range commonKeys {
		if len(k) == len(b) && bytes.EqualFold([]byte(k), b) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// methodString returns common methods without allocating.
func methodString(b []byte) string {
	switch string(b) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodOptions:
		return http.MethodOptions
	}
	return string(b)
}
