// Package archive is the segmented-archive feature (docs/distribution.md): it cuts a
// range of a publishing point's archive into an on-demand asset, through
// the admin HTTP API (POST /api/points/<pp>/cut on origin and serve) or
// `sluice archive cut`. The cut itself is store.Store.Cut.
//
// Times name the point's media timeline: each track's time divided by its
// timescale, which is also the presentation time of the live DASH MPD
// (Period start 0) and, for epoch-anchored channels (sluice push, redundant
// encoders), Unix time. They are given as seconds ("1732550400",
// "93.5"), as a Go duration from media time zero ("90s", "1h30m"), or as
// an RFC 3339 wall-clock time ("2026-11-25T14:00:00Z"), which is mapped
// through the point's anchor (the wall-clock time of media time zero), or
// as an SCTE-35 marker of the point: "out:<id>" is the time of the latest
// splice_insert out of network with splice_event_id <id> (the start of an
// ad break), "in:<id>" that of the return (Cut; markers: docs/origin.md).
package archive

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/scte35"
	"github.com/sluice-media/sluice/internal/store"
)

var secondsRe = regexp.MustCompile(`^-?[0-9]+(\.[0-9]{1,9})?$`)

// ParseTime parses a cut time (see the package comment) into a time of the
// media timeline. anchor is the point's wall-clock time of media time zero;
// RFC 3339 times need it.
func ParseTime(s string, anchor time.Time) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if secondsRe.MatchString(s) {
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return 0, fmt.Errorf("time %q: not a number of seconds", s)
		}
		ns := new(big.Rat).Mul(r, big.NewRat(int64(time.Second), 1))
		if !ns.IsInt() || !ns.Num().IsInt64() {
			return 0, fmt.Errorf("time %q out of range", s)
		}
		return time.Duration(ns.Num().Int64()), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if anchor.IsZero() {
			return 0, fmt.Errorf("time %q: the point has no wall-clock anchor yet; give seconds of media time", s)
		}
		return t.Sub(anchor), nil
	}
	return 0, fmt.Errorf("time %q: want seconds of media time (e.g. 93.5), a duration (e.g. 1h30m) or an RFC 3339 time", s)
}

// ErrNoMarker means a cut time names an SCTE-35 marker the point does not
// hold.
var ErrNoMarker = errors.New("no such marker")

// markerRe matches a cut time that names an SCTE-35 marker.
var markerRe = regexp.MustCompile(`^(out|in):([0-9]{1,10})$`)

// Cut parses from and to against the source point and cuts the asset.
func Cut(st *store.Store, src, asset, from, to string) (store.CutResult, error) {
	p, err := st.Point(src)
	if err != nil {
		return store.CutResult{}, err
	}
	a, err := pointTime(p, from)
	if err != nil {
		return store.CutResult{}, fmt.Errorf("from: %w", err)
	}
	b, err := pointTime(p, to)
	if err != nil {
		return store.CutResult{}, fmt.Errorf("to: %w", err)
	}
	return st.Cut(src, asset, a, b)
}

// pointTime parses a cut time of point p: a marker reference or what
// ParseTime reads.
func pointTime(p *store.Point, s string) (time.Duration, error) {
	m := markerRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return ParseTime(s, p.Meta().Anchor)
	}
	id, err := strconv.ParseUint(m[2], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("marker %q: %w", s, err)
	}
	var at time.Duration
	found := false
	for _, e := range p.View(0).Events {
		if e.Scheme != media.SchemeSCTE35 || e.Timescale == 0 {
			continue
		}
		sp, err := scte35.Decode(e.Data)
		if err != nil || sp.Command != scte35.SpliceInsert || sp.Cancel || sp.EventID != uint32(id) || sp.Out != (m[1] == "out") {
			continue
		}
		at, found = time.Duration(new(big.Int).Div(new(big.Int).Mul(big.NewInt(e.Time), big.NewInt(int64(time.Second))),
			big.NewInt(int64(e.Timescale))).Int64()), true
	}
	if !found {
		return 0, fmt.Errorf("%s: no splice_insert %s with splice_event_id %d in the point: %w", s, m[1], id, ErrNoMarker)
	}
	return at, nil
}

// CutRequest is the body of POST /api/points/<pp>/cut. From and To are JSON
// numbers (seconds) or strings in any form ParseTime accepts.
type CutRequest struct {
	Asset string          `json:"asset"`
	From  json.RawMessage `json:"from"`
	To    json.RawMessage `json:"to"`
}

// CutResponse is the answer to a successful cut (201 Created).
type CutResponse struct {
	Asset     string            `json:"asset"`
	Source    string            `json:"source"`
	Start     float64           `json:"start"` // seconds of the source's media timeline
	End       float64           `json:"end"`
	Duration  float64           `json:"duration"` // seconds
	Tracks    int               `json:"tracks"`
	Fragments int               `json:"fragments"`
	Bytes     int64             `json:"bytes"`
	Manifests map[string]string `json:"manifests"`
}

// CutDir is Cut over the data directory dir, opened shared (a server may
// run over it: `sluice archive cut --data`), answered as the admin API
// answers.
func CutDir(dir, src, asset, from, to string, log *slog.Logger) (CutResponse, error) {
	st, err := store.OpenShared(dir, log)
	if err != nil {
		return CutResponse{}, err
	}
	r, err := Cut(st, src, asset, from, to)
	if err != nil {
		return CutResponse{}, err
	}
	return NewCutResponse(src, r), nil
}

// NewCutResponse describes a cut result.
func NewCutResponse(src string, r store.CutResult) CutResponse {
	base := "/" + r.Asset + ".isml/"
	return CutResponse{
		Asset: r.Asset, Source: src, Start: r.Start.Seconds(), End: r.End.Seconds(), Duration: r.Duration().Seconds(),
		Tracks: r.Tracks, Fragments: r.Fragments, Bytes: r.Bytes,
		Manifests: map[string]string{"dash": base + "manifest.mpd", "hls": base + "master.m3u8", "smooth": base + "Manifest"},
	}
}

// rawTime turns a JSON number or string into the text ParseTime reads.
func rawTime(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("missing")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("want a number of seconds or a string, got %s", raw)
	}
	return n.String(), nil
}

// API returns the admin HTTP API, mounted at /api/:
//
//	POST /api/points/<pp>/cut   {"asset": "...", "from": T1, "to": T2}
//	POST /api/points/<pp>/cues  {"type": "out"|"in", "id": N, "time": T, "duration": S}
//
// Every request needs "Authorization: Bearer <token>"; with no token
// configured the API is disabled (403).
func API(st *store.Store, token string, log *slog.Logger) http.Handler {
	return &api{st: st, token: token, log: log}
}

type api struct {
	st    *store.Store
	token string
	log   *slog.Logger
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if a.token == "" {
		apiError(w, http.StatusForbidden, "the admin API is disabled: configure admin_token (--admin-token)")
		return
	}
	got, _, ok := httpx.Bearer(r.Header)
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice admin"`)
		apiError(w, http.StatusUnauthorized, "missing or wrong admin token")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/points/")
	if pp, isCues := strings.CutSuffix(rest, "/cues"); ok && isCues && pp != "" {
		a.cue(w, r, pp)
		return
	}
	src, isCut := strings.CutSuffix(rest, "/cut")
	if !ok || !isCut || src == "" {
		apiError(w, http.StatusNotFound, "unknown API resource")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		apiError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	var req CutRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	from, err := rawTime(req.From)
	if err != nil {
		apiError(w, http.StatusBadRequest, "from: "+err.Error())
		return
	}
	to, err := rawTime(req.To)
	if err != nil {
		apiError(w, http.StatusBadRequest, "to: "+err.Error())
		return
	}
	res, err := Cut(a.st, src, req.Asset, from, to)
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, store.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, store.ErrExists):
			code = http.StatusConflict
		case errors.Is(err, store.ErrEmptyCut), errors.Is(err, ErrNoMarker):
			code = http.StatusUnprocessableEntity
		}
		apiError(w, code, err.Error())
		return
	}
	a.log.Info("archive cut", "source", src, "asset", res.Asset, "start", res.Start.Seconds(), "end", res.End.Seconds(),
		"fragments", res.Fragments, "copied", res.Copied)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/"+res.Asset+".isml/manifest.mpd")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(NewCutResponse(src, res))
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
