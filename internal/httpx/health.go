package httpx

import "net/http"

// Healthz answers GET /healthz of every role: the process is alive.
func Healthz(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }

// Readyz returns the handler of GET /readyz: 200 "ready" while ready
// returns nil, else 503 with its error as the reason.
func Readyz(ready func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	}
}
