package origin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

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

// serveView answers GET /<pp>.isml/view.json: the point's index as JSON (a
// store.View, cut to the DVR window while live, as the manifests list it).
// Schedulers render their per-session manifests from it
// (internal/scheduler). It carries nothing a manifest does not show.
func (h *Handler) serveView(w http.ResponseWriter, r *http.Request, point *store.Point) {
	body, err := json.Marshal(h.view(point))
	if err != nil {
		h.log.Error("view json", "point", point.Name, "err", err)
		http.Error(w, "cannot encode the index", http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"v-` + hex.EncodeToString(sum[:10]) + `"`
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
