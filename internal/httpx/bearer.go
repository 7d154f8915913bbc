package httpx

import (
	"net/http"
	"strings"
)

// Bearer reads an "Authorization: Bearer <token>" header. The scheme is
// matched case-insensitively (RFC 9110 §11.1); no other scheme is
// accepted. present reports whether the request has an Authorization
// header at all; ok is false when it has one that is not a Bearer token
// (another scheme such as Basic, a bare token, an empty token).
func Bearer(h http.Header) (token string, present, ok bool) {
	v := h.Get("Authorization")
	if v == "" {
		return "", false, false
	}
	scheme, tok, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", true, false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", true, false
	}
	return tok, true, true
}
