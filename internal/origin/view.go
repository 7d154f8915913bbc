package origin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/store"
)

// viewAllowed checks that a request for the index is signed with the
// cluster key (internal/clusterauth, as every internal request) when this
// origin has a cluster secret; otherwise it answers 401 with the reason
// and reports false. An origin without a cluster secret serves the index
// to anyone: it shows nothing its manifests do not.
func (h *Handler) viewAllowed(w http.ResponseWriter, r *http.Request) bool {
	if h.viewAuth == nil {
		return true
	}
	if err := h.viewAuth.Verify(r); err != nil {
		h.viewAuth.Refuse(w, r, err)
		return false
	}
	return true
}

// maxViewWait bounds the wait a view request may ask for (Prefer: wait).
const maxViewWait = 30 * time.Second

// serveView answers GET /<pp>.isml/view.json: the point's index as JSON (a
// store.View, cut to the DVR window while live, as the manifests list it).
// Schedulers render their per-session manifests from it
// (internal/scheduler). It carries nothing a manifest does not show.
//
// With If-None-Match naming the current version and "Prefer: wait=<s>"
// (RFC 7240) the request is a long poll: it is answered when the index
// changes — a fragment, or a part of a low-latency stream, arrives — or
// with 304 after that many seconds (at most 30). A scheduler then learns
// of a part the moment it is kept here instead of at its next poll.
func (h *Handler) serveView(w http.ResponseWriter, r *http.Request, point *store.Point) {
	var wait *time.Timer
	if d := preferWait(r.Header.Get("Prefer")); d > 0 && r.Header.Get("If-None-Match") != "" {
		wait = time.NewTimer(d)
		defer wait.Stop()
	}
	var body []byte
	var etag string
	for {
		changed := point.Changed()
		var err error
		body, err = json.Marshal(h.view(point))
		if err != nil {
			h.log.Error("view json", "point", point.Name, "err", err)
			http.Error(w, "cannot encode the index", http.StatusInternalServerError)
			return
		}
		sum := sha256.Sum256(body)
		etag = `"v-` + hex.EncodeToString(sum[:10]) + `"`
		if inm := r.Header.Get("If-None-Match"); wait == nil || inm == "" || !strings.Contains(inm, etag) {
			break
		}
		select {
		case <-changed:
			continue
		case <-wait.C:
		case <-r.Context().Done():
			return
		}
		break
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

// preferWait is the wait=<seconds> preference of a Prefer header (RFC
// 7240), capped at maxViewWait; 0 when there is none.
func preferWait(v string) time.Duration {
	for _, p := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "wait") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
		if err != nil || n <= 0 {
			return 0
		}
		return min(time.Duration(n)*time.Second, maxViewWait)
	}
	return 0
}
