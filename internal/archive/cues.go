package archive

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/sluice-media/sluice/internal/cues"
	"github.com/sluice-media/sluice/internal/store"
)

// maxCueBody bounds the body of a cue request.
const maxCueBody = 4 << 10

// CueResponse is the answer to a stored cue (201 Created).
type CueResponse struct {
	Point    string   `json:"point"`
	Type     string   `json:"type"`
	ID       uint32   `json:"id"`
	Time     float64  `json:"time"` // seconds of the point's media timeline
	Duration *float64 `json:"duration,omitempty"`
	// SCTE35 is the splice_info_section, base64 (as DASH carries it) and
	// hex (as HLS EXT-X-DATERANGE does).
	SCTE35    string `json:"scte35"`
	SCTE35Hex string `json:"scte35_hex"`
}

// cue serves POST /api/points/<pp>/cues: an SCTE-35 splice_insert stored
// with the point and signalled in its manifests (see docs/origin.md).
func (a *api) cue(w http.ResponseWriter, r *http.Request, pp string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		apiError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	p, err := a.st.Point(pp)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, store.ErrNotFound) {
			code = http.StatusNotFound
		}
		apiError(w, code, err.Error())
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxCueBody+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if len(body) > maxCueBody {
		apiError(w, http.StatusRequestEntityTooLarge, "body over 4 KiB")
		return
	}
	var req cues.Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.log.Info("cue refused", "point", pp, "err", err)
		apiError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	var at time.Duration
	if len(req.Time) == 0 || string(req.Time) == "null" {
		edge, ok := p.Edge()
		if !ok {
			apiError(w, http.StatusConflict, "time: the point has no media yet; give the cue's time")
			return
		}
		at = edge
	} else {
		s, err := rawTime(req.Time)
		if err == nil {
			at, err = ParseTime(s, p.Meta().Anchor)
		}
		if err != nil {
			a.log.Info("cue refused", "point", pp, "err", err)
			apiError(w, http.StatusBadRequest, "time: "+err.Error())
			return
		}
	}
	c, err := cues.Build(req, at)
	if err != nil {
		a.log.Info("cue refused", "point", pp, "err", err)
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := p.AddCue(c.Event); err != nil {
		a.log.Error("store cue", "point", pp, "err", err)
		apiError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.log.Info("cue stored", "point", pp, "type", req.Type, "id", c.Splice.EventID, "time", at.Seconds())
	res := CueResponse{Point: pp, Type: req.Type, ID: c.Splice.EventID, Time: at.Seconds(), Duration: req.Duration,
		SCTE35: base64.StdEncoding.EncodeToString(c.Event.Data), SCTE35Hex: "0x" + hex.EncodeToString(c.Event.Data)}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(res)
}
