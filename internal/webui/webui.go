// Package webui serves the status page of a Sluice node: every publishing
// point of the local store with its tracks and manifest links, and, when the
// JavaScript players are installed (`cd web && npm ci`), buttons that play
// each channel with dash.js (DASH), hls.js (HLS) and dash.js with its MSS
// module (Smooth Streaming) together with a live readout and a buffer chart.
//
// A process that runs a scheduler or a sender has a cluster panel on the
// page (SetCluster, SetSender): per sender RAM used and pinned, sessions,
// RAM hit ratio and refused look-aheads. Without a store (a standalone
// scheduler or sender) the page is that panel alone.
//
// The players come from npm at build time and are never committed; they are
// read from playerDir (normally web/node_modules) and served under /player/.
// The page itself is self-contained (inline CSS and JavaScript, no CDN).
//
// Routes answered by the handler (anything else is 404, so the handler can
// sit beside the origin on one mux):
//
//	GET /                     the status page
//	GET /status.json          the same listing as JSON (the page polls it)
//	GET /play?kind=K&url=U    a bare player page for one manifest (used by the
//	                          browser acceptance test): K is dash, mss, hls or
//	                          shaka (Shaka Player, DASH or HLS by the manifest); U
//	                          is a same-origin path such as /live.isml/manifest.mpd
//	GET /player/<file>        dash.all.min.js, dash.mss.min.js, hls.min.js or
//	                          shaka-player.compiled.js
package webui

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/store"
)

// playerFile is one JavaScript player served under /player/.
type playerFile struct {
	// Name is the file name under /player/.
	Name string
	// Candidates are paths relative to playerDir, tried in order; the first
	// that exists is served.
	Candidates []string
}

// playerFiles is the fixed set of files the handler serves from playerDir.
// Request paths are only ever matched against these names: nothing from the
// request reaches the file system.
var playerFiles = []playerFile{
	{"dash.all.min.js", []string{"dashjs/dist/modern/umd/dash.all.min.js", "dashjs/dist/legacy/umd/dash.all.min.js"}},
	{"dash.mss.min.js", []string{"dashjs/dist/modern/umd/dash.mss.min.js", "dashjs/dist/legacy/umd/dash.mss.min.js"}},
	{"hls.min.js", []string{"hls.js/dist/hls.min.js"}},
	{"shaka-player.compiled.js", []string{"shaka-player/dist/shaka-player.compiled.js"}},
}

// InstallHint tells an operator how to make the players available.
const InstallHint = "install the players with: cd web && npm ci"

//go:embed page.html
var pageHTML string

//go:embed play.html
var playHTML string

//go:embed player.js
var playerJS string

// funcs are the template helpers. js marks the embedded player glue (a
// constant of this package, never user input) as safe script text.
var funcs = template.FuncMap{
	"js":   func(s string) template.JS { return template.JS(s) },
	"kbps": func(bps int) string { return strconv.Itoa((bps + 500) / 1000) },
	"mib":  func(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) },
	"pct": func(r float64) string {
		if r < 0 {
			return "-"
		}
		return strconv.FormatFloat(100*r, 'f', 1, 64) + " %"
	},
	// clock shows a wall-clock time as the page does (UTC, to the second).
	"clock": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " UTC" },
}

var (
	pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(pageHTML))
	playTmpl = template.Must(template.New("play").Funcs(funcs).Parse(playHTML))
)

// Handler is the status page handler returned by New.
type Handler struct {
	st        *store.Store
	playerDir string
	log       *slog.Logger
	start     time.Time
	cluster   Cluster
	sender    Sender
}

// Cluster is what the status page shows of a process that runs a
// scheduler: its sessions and the last stats it read from each sender.
// *scheduler.Scheduler implements it.
type Cluster interface {
	Sessions() int
	SenderStats() map[string]cluster.SenderStats
}

// Sender is what the status page shows of a process that runs a sender
// and no scheduler: its own counters. *sender.Sender implements it.
type Sender interface {
	Stats() cluster.SenderStats
}

// SetCluster adds the cluster panel (senders with RAM used and pinned,
// sessions, RAM hit ratio, refused look-aheads; the scheduler's sessions)
// to the page. Call it before serving.
func (h *Handler) SetCluster(c Cluster) { h.cluster = c }

// SetSender adds the cluster panel of a sender (its own RAM used and
// pinned, sessions, RAM hit ratio, refused look-aheads) to the page of a
// process without a scheduler. Call it before serving.
func (h *Handler) SetSender(s Sender) { h.sender = s }

// New returns the status page handler. st is the local store: nil for a
// process without one (a scheduler or a sender), whose page is then the
// cluster panel only, with no publishing points and no player; playerDir
// is the directory holding the npm packages dashjs, hls.js and
// shaka-player (normally web/node_modules); log receives warnings.
func New(st *store.Store, playerDir string, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{st: st, playerDir: playerDir, log: log, start: time.Now()}
}

// ServeHTTP routes the page, the JSON status, the test player page and the
// player files.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case p == "/":
		h.servePage(w, r)
	case p == "/status.json":
		h.serveStatus(w, r)
	case p == "/play":
		h.servePlay(w, r)
	case strings.HasPrefix(p, "/player/"):
		h.servePlayer(w, r, strings.TrimPrefix(p, "/player/"))
	default:
		http.NotFound(w, r)
	}
}

// TrackStatus describes one track on the status page.
type TrackStatus struct {
	ID         string  `json:"id"`
	Kind       string  `json:"kind"`
	Codec      string  `json:"codec"`
	Bitrate    int     `json:"bitrate"`
	Width      int     `json:"width,omitempty"`
	Height     int     `json:"height,omitempty"`
	SampleRate int     `json:"sample_rate,omitempty"`
	Channels   int     `json:"channels,omitempty"`
	Language   string  `json:"language,omitempty"`
	Ended      bool    `json:"ended"`
	Fragments  int     `json:"fragments"`
	Seconds    float64 `json:"seconds"`  // media time held (sum of fragment durations)
	Edge       float64 `json:"edge"`     // end of the last fragment, in seconds of media time
	LastFrag   float64 `json:"last_dur"` // duration of the last fragment in seconds
	// EdgeClock is Edge as a wall-clock time, for points whose media time
	// is anchored to the wall clock; zero otherwise.
	EdgeClock time.Time `json:"edge_clock,omitzero"`
}

// PointStatus describes one publishing point on the status page.
type PointStatus struct {
	Name string `json:"name"`
	// State is "live", "ended" (every track ended: live-to-VOD), "vod" or
	// "idle" (no track yet).
	State  string        `json:"state"`
	Tracks []TrackStatus `json:"tracks"`
	// EdgeAge is how long ago, in seconds of wall-clock time, the newest
	// fragment's end was due (live points with an anchor only; -1 otherwise).
	EdgeAge float64 `json:"edge_age"`
	// EdgeClock is the wall-clock time of the newest fragment's end, for
	// points whose media time is anchored to the wall clock (epoch-anchored
	// pushes); zero otherwise.
	EdgeClock time.Time `json:"edge_clock,omitzero"`
	// Base is the path prefix of the point's URLs: /<pp>.isml.
	Base   string `json:"base"`
	DASH   string `json:"dash"`
	HLS    string `json:"hls"`
	Smooth string `json:"smooth"`
}

// Status is the whole listing.
type Status struct {
	Time    time.Time      `json:"time"`
	Uptime  float64        `json:"uptime"`
	Players bool           `json:"players"`
	Points  []PointStatus  `json:"points"`
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus is the cluster panel: what the process's scheduler knows
// of its senders, or what the process's sender knows of itself.
type ClusterStatus struct {
	// Role is "scheduler" (Sessions are the scheduler's, Senders those
	// that report to it) or "sender" (Sessions are the sessions valid at
	// this sender, Senders is itself).
	Role     string         `json:"role"`
	Sessions int            `json:"sessions"`
	Senders  []SenderStatus `json:"senders"`
}

// SenderStatus is one sender in the cluster panel: the figures an operator
// watches.
type SenderStatus struct {
	ID           string `json:"id"`
	Blocks       int    `json:"blocks"`
	RAMBytes     int64  `json:"ram_bytes"`
	RAMBudget    int64  `json:"ram_budget"`
	PinnedBlocks int    `json:"pinned_blocks"`
	PinnedBytes  int64  `json:"pinned_bytes"`
	// Sessions are the sessions valid at the sender.
	Sessions int `json:"sessions"`
	// HitRatio is the share of sends served from RAM (-1: nothing sent).
	HitRatio float64 `json:"ram_hit_ratio"`
	// Refused counts the look-aheads refused because RAM was full of
	// pinned blocks.
	Refused int64 `json:"refused_lookaheads"`
}

// clusterStatus reads the panel from the scheduler, else from the sender
// (nil without either).
func (h *Handler) clusterStatus() *ClusterStatus {
	switch {
	case h.cluster != nil:
		cs := &ClusterStatus{Role: "scheduler", Sessions: h.cluster.Sessions(), Senders: []SenderStatus{}}
		for id, st := range h.cluster.SenderStats() {
			st.ID = id
			cs.Senders = append(cs.Senders, senderStatus(st))
		}
		sort.Slice(cs.Senders, func(i, j int) bool { return cs.Senders[i].ID < cs.Senders[j].ID })
		return cs
	case h.sender != nil:
		st := h.sender.Stats()
		return &ClusterStatus{Role: "sender", Sessions: st.Sessions, Senders: []SenderStatus{senderStatus(st)}}
	}
	return nil
}

// senderStatus is the panel's row of a sender's stats.
func senderStatus(st cluster.SenderStats) SenderStatus {
	ss := SenderStatus{
		ID: st.ID, Blocks: st.Blocks, RAMBytes: st.RAMBytes, RAMBudget: st.RAMBudget,
		PinnedBlocks: st.PinnedBlocks, PinnedBytes: st.PinnedBytes, Sessions: st.Sessions,
		HitRatio: -1, Refused: st.Refused,
	}
	if n := st.SendsRAM + st.SendsDisk; n > 0 {
		ss.HitRatio = float64(st.SendsRAM) / float64(n)
	}
	return ss
}

// pointURL is the path prefix of a point's presentation: /<pp>.isml. Point
// names are already restricted by the store to [A-Za-z0-9_.-] segments; each
// segment is escaped anyway.
func pointURL(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/" + strings.Join(segs, "/") + ".isml"
}

func (h *Handler) status() Status {
	now := time.Now()
	s := Status{Time: now.UTC(), Uptime: now.Sub(h.start).Seconds(), Players: h.playersPresent(), Cluster: h.clusterStatus()}
	// Every point of the data directory, also assets imported by another
	// process that no one has requested yet.
	var names []string
	if h.st != nil { // a scheduler's page has no store
		names = h.st.PointsOnDisk()
	}
	for _, name := range names {
		p, err := h.st.Point(name)
		if err != nil {
			h.log.Warn("status page: point vanished", "point", name, "err", err)
			continue
		}
		v := p.View(0)
		base := pointURL(name)
		ps := PointStatus{
			Name: name, EdgeAge: -1, Base: base,
			DASH: base + "/manifest.mpd", HLS: base + "/master.m3u8", Smooth: base + "/Manifest",
		}
		var edge float64
		for _, t := range v.Tracks {
			ts := TrackStatus{
				ID: t.ID, Kind: t.Info.Kind, Codec: t.Info.Codec, Bitrate: t.Info.Bitrate,
				Width: t.Info.Width, Height: t.Info.Height, SampleRate: t.Info.SampleRate,
				Channels: t.Info.Channels, Language: t.Info.Language, Ended: t.Ended,
				Fragments: len(t.Frags),
			}
			if n := len(t.Frags); n > 0 && t.Info.Timescale > 0 {
				var d uint64
				for _, f := range t.Frags {
					d += f.Duration
				}
				ts.Seconds = float64(d) / float64(t.Info.Timescale)
				ts.Edge = t.Seconds(t.Frags[n-1].End())
				ts.LastFrag = float64(t.Frags[n-1].Duration) / float64(t.Info.Timescale)
				edge = max(edge, ts.Edge)
				if !v.Meta.Anchor.IsZero() && !v.Meta.VOD {
					ts.EdgeClock = v.Meta.Anchor.Add(time.Duration(ts.Edge * float64(time.Second))).UTC()
				}
			}
			ps.Tracks = append(ps.Tracks, ts)
		}
		if !v.Meta.Anchor.IsZero() && edge > 0 && !v.Meta.VOD {
			ps.EdgeClock = v.Meta.Anchor.Add(time.Duration(edge * float64(time.Second))).UTC()
		}
		switch {
		case v.Meta.VOD:
			ps.State = "vod"
		case len(v.Tracks) == 0:
			ps.State = "idle"
		case v.Ended:
			ps.State = "ended"
		default:
			ps.State = "live"
			if !v.Meta.Anchor.IsZero() && edge > 0 {
				due := v.Meta.Anchor.Add(time.Duration(edge * float64(time.Second)))
				ps.EdgeAge = max(0, now.Sub(due).Seconds())
			}
		}
		s.Points = append(s.Points, ps)
	}
	return s
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	// Without a store the page is the cluster panel of a scheduler or a
	// sender: no publishing points, no player.
	title := "node"
	if h.st == nil {
		switch {
		case h.cluster != nil:
			title = "scheduler"
		case h.sender != nil:
			title = "sender"
		}
	}
	data := struct {
		Status
		PlayerJS string
		Origin   bool
		Title    string
	}{h.status(), playerJS, h.st != nil, title}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, data); err != nil {
		h.log.Error("status page template", "err", err)
		http.Error(w, "internal error rendering the status page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(h.status())
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// playKinds are the player kinds of /play and the scripts each needs.
var playKinds = map[string][]string{
	"dash": {"dash.all.min.js"},
	"mss":  {"dash.all.min.js", "dash.mss.min.js"},
	"hls":  {"hls.min.js"},
	// shaka plays DASH or HLS with Shaka Player, whichever the manifest is.
	"shaka": {"shaka-player.compiled.js"},
}

// manifestPath validates the url parameter of /play: a same-origin absolute
// path (no scheme, no host, no "//" prefix, no backslash, no control
// characters, no dot segments), at most 1024 bytes. It returns the
// normalised path with its query, if any.
func manifestPath(raw string) (string, error) {
	if raw == "" || len(raw) > 1024 {
		return "", errors.New("url must be a path of 1 to 1024 bytes")
	}
	if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\") {
		return "", errors.New("url must be a same-origin path starting with a single /")
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f {
			return "", errors.New("url contains control characters")
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Fragment != "" {
		return "", errors.New("url must be a same-origin path")
	}
	if c := path.Clean(u.Path); c != u.Path && c+"/" != u.Path {
		return "", errors.New("url must not contain dot segments or empty segments")
	}
	return u.RequestURI(), nil
}

func (h *Handler) servePlay(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind := q.Get("kind")
	scripts, ok := playKinds[kind]
	if !ok {
		http.Error(w, "kind must be dash, mss, hls or shaka", http.StatusBadRequest)
		return
	}
	manifest, err := manifestPath(q.Get("url"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, s := range scripts {
		if _, err := h.findPlayer(s); err != nil {
			http.Error(w, "player "+s+" is not installed: "+InstallHint, http.StatusNotFound)
			return
		}
	}
	data := struct {
		Kind, URL string
		Scripts   []string
		PlayerJS  string
	}{kind, manifest, scripts, playerJS}
	var buf bytes.Buffer
	if err := playTmpl.Execute(&buf, data); err != nil {
		h.log.Error("play page template", "err", err)
		http.Error(w, "internal error rendering the play page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

// findPlayer returns the path on disk of a player file, or an error when the
// name is not one of playerFiles or the file is not installed.
func (h *Handler) findPlayer(name string) (string, error) {
	for _, pf := range playerFiles {
		if pf.Name != name {
			continue
		}
		if h.playerDir == "" { // a process that serves no players
			return "", os.ErrNotExist
		}
		for _, c := range pf.Candidates {
			p := filepath.Join(h.playerDir, filepath.FromSlash(c))
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
		return "", os.ErrNotExist
	}
	return "", errUnknownPlayer
}

var errUnknownPlayer = errors.New("unknown player file")

func (h *Handler) playersPresent() bool {
	for _, pf := range playerFiles {
		if _, err := h.findPlayer(pf.Name); err != nil {
			return false
		}
	}
	return true
}

func (h *Handler) servePlayer(w http.ResponseWriter, r *http.Request, name string) {
	p, err := h.findPlayer(name)
	if errors.Is(err, errUnknownPlayer) {
		http.Error(w, "unknown player file; served are: dash.all.min.js, dash.mss.min.js, hls.min.js", http.StatusNotFound)
		return
	}
	if err != nil {
		h.log.Warn("player file missing", "file", name, "dir", h.playerDir)
		http.Error(w, "player file "+name+" is not installed: "+InstallHint, http.StatusNotFound)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		http.Error(w, "player file "+name+" is not readable", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "player file "+name+" is not readable", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(fi.Size(), 36)+"-"+strconv.FormatInt(fi.ModTime().UnixNano(), 36)))
	http.ServeContent(w, r, name, fi.ModTime(), f)
}
