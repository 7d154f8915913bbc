package httpx

import "net/http"

// The CORS headers of every client route (origin, distribution, scheduler
// sessions, sender blocks): players on other origins send CMCD request
// headers, Range and conditional requests and Sluice-Pacing, and read the
// CMSD and caching headers of the responses.
const (
	CORSAllowHeaders  = "Range, If-None-Match, If-Modified-Since, CMCD-Request, CMCD-Object, CMCD-Status, CMCD-Session, Sluice-Pacing"
	CORSExposeHeaders = "CMSD-Static, CMSD-Dynamic, ETag, Content-Length, Content-Range, Date, Age"
	// clientMethods are the methods a client route answers.
	clientMethods = "GET, HEAD, OPTIONS"
)

// SetCORS adds the CORS response headers Sluice sends on every client route.
// The values are shared, read-only slices (no allocation per response);
// net/http copies them when it writes the header, and Header.Add appends
// to a copy.
func SetCORS(h http.Header) {
	h["Access-Control-Allow-Origin"] = corsAnyOrigin
	h["Access-Control-Expose-Headers"] = corsExpose
}

var (
	corsAnyOrigin = []string{"*"}
	corsExpose    = []string{CORSExposeHeaders}
)

// Preflight answers a CORS preflight (OPTIONS) of a client route: 204 with
// the methods and request headers allowed, cached by the browser for a day.
func Preflight(w http.ResponseWriter) {
	SetCORS(w.Header())
	w.Header().Set("Access-Control-Allow-Methods", clientMethods)
	w.Header().Set("Access-Control-Allow-Headers", CORSAllowHeaders)
	w.Header().Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// MethodNotAllowed answers 405 for a method a client route does not take.
func MethodNotAllowed(w http.ResponseWriter) {
	w.Header().Set("Allow", clientMethods)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

// ClientMethods starts a response on a client route that players on other
// origins read: it sets the CORS headers, answers a preflight (OPTIONS)
// and refuses methods other than GET and HEAD (405). It reports whether
// the handler goes on.
func ClientMethods(w http.ResponseWriter, r *http.Request) bool {
	SetCORS(w.Header())
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodOptions:
		Preflight(w)
	default:
		MethodNotAllowed(w)
	}
	return false
}
