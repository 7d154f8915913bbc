package urlsign

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Guard requires a valid token on the GET and HEAD requests Scope selects
// (every one when nil): 403 with the reason otherwise. A request whose
// token came in the query gets it back as a cookie (Path = the token's
// prefix, expiring with it), so that a player's further requests under
// the prefix — segments named by relative URLs — carry it. The token's
// parameter is removed from the query before next sees it (caches key on
// the path alone).
type Guard struct {
	Key   Key
	Scope func(r *http.Request) bool
	Now   func() time.Time
	// Log receives refusals (at most one line a second, with the number
	// left out).
	Log *slog.Logger
	// Refused, when set, is called with the reason of every refusal.
	Refused func(reason string)

	mu       sync.Mutex
	lastLog  time.Time
	unlogged int
}

// Middleware wraps next with the check.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || (g.Scope != nil && !g.Scope(r)) {
			next.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		if g.Now != nil {
			now = g.Now()
		}
		tok, inQuery := FromRequest(r)
		prefix, exp, err := g.Key.Verify(tok, r.URL.Path, now)
		if err != nil {
			g.refuse(w, r, err, now)
			return
		}
		if inQuery {
			http.SetCookie(w, &http.Cookie{Name: Cookie, Value: tok, Path: prefix,
				MaxAge: int(exp.Sub(now).Seconds()) + 1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
			r2 := r.Clone(r.Context())
			q := r2.URL.Query()
			q.Del(Param)
			r2.URL.RawQuery = q.Encode()
			r2.RequestURI = r2.URL.RequestURI()
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, err error, now time.Time) {
	reason := Reason(err)
	if g.Refused != nil {
		g.Refused(reason)
	}
	if g.Log != nil {
		g.mu.Lock()
		due := now.Sub(g.lastLog) >= time.Second
		n := g.unlogged
		if due {
			g.lastLog, g.unlogged = now, 0
		} else {
			g.unlogged++
		}
		g.mu.Unlock()
		if due {
			g.Log.Warn("request refused: signed URL required", "status", http.StatusForbidden, "reason", reason,
				"path", r.URL.Path, "remote", r.RemoteAddr, "err", err, "refusals_not_logged", n)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	http.Error(w, "forbidden: "+err.Error()+" (status "+strconv.Itoa(http.StatusForbidden)+")", http.StatusForbidden)
}
