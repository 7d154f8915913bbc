package player

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-media/sluice/internal/pause"
)

// manifestSource loads a manifest of one format and turns it into a
// Presentation. active names the renditions in use, by kind; only HLS needs
// it (each variant is a playlist of its own, reloaded only while in use).
type manifestSource interface {
	load(ctx context.Context, active map[Kind]string) (*Presentation, error)
}

// fetchText fetches a manifest and counts it.
type fetchText func(ctx context.Context, u string) ([]byte, error)

// dashSource loads an MPD and keeps the server clock offset (UTCTiming).
type dashSource struct {
	url    *url.URL
	fetch  fetchText
	offset atomic.Int64 // server clock minus local clock, ns
	synced bool         // an http-* UTCTiming has been fetched
	last   []byte       // the previous MPD, to see changes
	paths  pathways     // the MPD-level BaseURLs' serviceLocations
}

// switchPathway implements pathwaySwitcher.
func (d *dashSource) switchPathway(ctx context.Context, from string) bool {
	return d.paths.next(ctx, d.fetch, from)
}

// pathwaySwitches implements pathwaySwitcher.
func (d *dashSource) pathwaySwitches() int {
	d.paths.mu.Lock()
	defer d.paths.mu.Unlock()
	return d.paths.switches
}

func (d *dashSource) now() time.Time {
	return time.Now().Add(time.Duration(d.offset.Load()))
}

func (d *dashSource) load(ctx context.Context, _ map[Kind]string) (*Presentation, error) {
	fetched := time.Now()
	data, err := d.fetch(ctx, d.url.String())
	if err != nil {
		return nil, err
	}
	p, info, err := parseMPDPathway(data, d.url, d.now, d.paths.current())
	if err != nil {
		return nil, err
	}
	again := false
	if !d.paths.known() {
		d.paths.setup(ctx, d.fetch, info.pathways, info.defaultPathway, info.steering, "_DASH_pathway")
		again = d.paths.current() != ""
	}
	if p.Live && d.syncClock(ctx, info, fetched) {
		// A new clock offset moves the live edge of clock-driven
		// templates: parse again with it.
		again = true
	}
	if again {
		if p, _, err = parseMPDPathway(data, d.url, d.now, d.paths.current()); err != nil {
			return nil, err
		}
	}
	p.Pathway = d.paths.current()
	if info.location != "" {
		if u, err := resolve(d.url, info.location); err == nil {
			d.url = u
		}
	}
	if p.Live && p.UpdatePeriod > 0 && d.last != nil && sameMPD(d.last, data) {
		// Nothing new yet: look again after half the period, as HLS
		// players do with an unchanged playlist (RFC 8216 6.3.4), instead
		// of finding a new segment up to a whole period late. (An MPD may
		// be fetched before minimumUpdatePeriod has passed; a scheduler's
		// lists a segment once a sender holds it, not on a clock.)
		p.UpdatePeriod /= 2
	}
	d.last = data
	return p, nil
}

// sameMPD tells whether two MPDs are the same apart from their UTCTiming
// (a direct UTCTiming carries the time of the request).
func sameMPD(a, b []byte) bool {
	return bytes.Equal(utcTimingRe.ReplaceAll(a, nil), utcTimingRe.ReplaceAll(b, nil))
}

var utcTimingRe = regexp.MustCompile(`<UTCTiming[^>]*>(</UTCTiming>)?`)

// syncClock applies the first UTCTiming scheme it understands and reports
// whether the offset changed by more than 100 ms.
func (d *dashSource) syncClock(ctx context.Context, info dashInfo, fetched time.Time) bool {
	for _, ut := range info.utcTiming {
		if ut == nil {
			continue
		}
		scheme := strings.TrimSpace(string(ut.SchemeIdUri))
		var server time.Time
		var err error
		local := fetched
		switch scheme {
		case "urn:mpeg:dash:utc:direct:2014", "urn:mpeg:dash:utc:direct:2012":
			server, err = parseXSDateTime(ut.Value)
		case "urn:mpeg:dash:utc:http-xsdate:2014", "urn:mpeg:dash:utc:http-iso:2014",
			"urn:mpeg:dash:utc:http-xsdate:2012", "urn:mpeg:dash:utc:http-iso:2012":
			if d.synced {
				return false
			}
			var u *url.URL
			if u, err = resolve(d.url, ut.Value); err != nil {
				continue
			}
			t0 := time.Now()
			var body []byte
			if body, err = d.fetch(ctx, u.String()); err != nil {
				continue
			}
			local = t0.Add(time.Since(t0) / 2)
			server, err = parseXSDateTime(string(bytes.TrimSpace(body)))
			d.synced = err == nil
		default:
			continue
		}
		if err != nil {
			continue
		}
		off := server.Sub(local)
		old := time.Duration(d.offset.Swap(int64(off)))
		return (off - old).Abs() > 100*time.Millisecond
	}
	return false
}

// smoothSource loads a Smooth client manifest.
type smoothSource struct {
	url   *url.URL
	fetch fetchText
}

func (s *smoothSource) load(ctx context.Context, _ map[Kind]string) (*Presentation, error) {
	data, err := s.fetch(ctx, s.url.String())
	if err != nil {
		return nil, err
	}
	return parseSmooth(data, s.url)
}

// hlsSource loads a master playlist once and the media playlists of the
// renditions in use at every reload, on the current pathway.
type hlsSource struct {
	url    *url.URL
	fetch  fetchText
	master *hlsMaster
	last   map[string]string // media playlist text by URI, to see changes
	paths  pathways          // the master's PATHWAY-IDs
}

// switchPathway implements pathwaySwitcher.
func (h *hlsSource) switchPathway(ctx context.Context, from string) bool {
	return h.paths.next(ctx, h.fetch, from)
}

// pathwaySwitches implements pathwaySwitcher.
func (h *hlsSource) pathwaySwitches() int {
	h.paths.mu.Lock()
	defer h.paths.mu.Unlock()
	return h.paths.switches
}

func (h *hlsSource) load(ctx context.Context, active map[Kind]string) (*Presentation, error) {
	if h.master == nil {
		data, err := h.fetch(ctx, h.url.String())
		if err != nil {
			return nil, err
		}
		if isMasterPlaylist(data) {
			if h.master, err = parseMasterPlaylist(data, h.url); err != nil {
				return nil, err
			}
		} else {
			// A media playlist given directly: one variant, muxed.
			u := h.url.String()
			h.master = &hlsMaster{variants: []hlsVariant{{uri: u, id: u}}}
		}
		h.last = map[string]string{}
		h.paths.setup(ctx, h.fetch, h.master.pathways, h.master.defaultPathway, h.master.steering, "_HLS_pathway")
	}
	var (
		pathway string
		view    *hlsMaster
		media   map[string]*hlsMedia
		changed bool
		err     error
	)
	// A media playlist that cannot be loaded on the current pathway (its
	// sender is down) moves the session to another one, as browser
	// players do: every pathway is tried at most once per load.
	for range max(len(h.master.pathways), 1) {
		pathway = h.paths.current()
		view = h.master.pathwayView(pathway)
		if media, changed, err = h.loadMedia(ctx, view, active); err == nil || ctx.Err() != nil || !h.paths.next(ctx, h.fetch, pathway) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	p, err := hlsPresentation(view, media)
	if err != nil {
		return nil, err
	}
	p.Pathway = pathway
	if !changed && p.UpdatePeriod > 0 {
		// RFC 8216 6.3.4: an unchanged playlist is retried after half the
		// target duration.
		p.UpdatePeriod /= 2
	}
	return p, nil
}

// loadMedia fetches the media playlists of the active renditions as a
// pathway's view lists them, and reports whether one changed.
func (h *hlsSource) loadMedia(ctx context.Context, view *hlsMaster, active map[Kind]string) (map[string]*hlsMedia, bool, error) {
	uris := map[string]string{}
	for _, v := range view.variants {
		uris[v.id] = v.uri
	}
	for _, r := range view.media {
		if r.uri != "" {
			uris[r.id] = r.uri
		}
	}
	media := map[string]*hlsMedia{}
	changed := false
	for _, id := range active {
		uri := uris[id]
		if id == "" || uri == "" {
			continue
		}
		data, err := h.fetch(ctx, uri)
		if err != nil {
			return nil, false, err
		}
		base, err := url.Parse(uri)
		if err != nil {
			return nil, false, fmt.Errorf("playlist URL: %w", err)
		}
		mp, err := parseMediaPlaylist(data, base)
		if err != nil {
			return nil, false, fmt.Errorf("media playlist %s: %w", uri, err)
		}
		media[id] = mp
		if h.last[uri] != string(data) {
			changed = true
			h.last[uri] = string(data)
		}
	}
	return media, changed, nil
}

// manifests keeps the current Presentation and reloads it while live.
type manifests struct {
	src     manifestSource
	onError func(error)

	loadMu sync.Mutex // serialises loads

	mu      sync.Mutex
	pres    *Presentation
	changed chan struct{} // closed when pres is replaced
	active  map[Kind]string
}

func newManifests(src manifestSource, onError func(error)) *manifests {
	return &manifests{src: src, onError: onError, changed: make(chan struct{}), active: map[Kind]string{}}
}

// current returns the presentation and a channel closed at the next change.
func (m *manifests) current() (*Presentation, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pres, m.changed
}

// refresh loads the manifest now.
func (m *manifests) refresh(ctx context.Context) error {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	m.mu.Lock()
	active := map[Kind]string{}
	for k, v := range m.active {
		active[k] = v
	}
	m.mu.Unlock()
	p, err := m.src.load(ctx, active)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.pres = p
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	return nil
}

// use marks rendition id as the one in use for kind and makes sure the
// current presentation has its segments, loading it if need be.
func (m *manifests) use(ctx context.Context, k Kind, id string) error {
	m.mu.Lock()
	m.active[k] = id
	loaded := false
	if st := m.pres.Stream(k); st != nil {
		if r := st.Rendition(id); r != nil && r.Loaded {
			loaded = true
		}
	}
	m.mu.Unlock()
	if loaded {
		return nil
	}
	return m.refresh(ctx)
}

// run reloads a live manifest at its update period until it turns static
// or ctx ends. A failed reload is reported and retried at the next period.
func (m *manifests) run(ctx context.Context) {
	last := time.Now()
	for {
		p, _ := m.current()
		if !p.Live {
			return
		}
		period := p.UpdatePeriod
		if period <= 0 {
			period = time.Second
		}
		period = min(max(period, 100*time.Millisecond), 30*time.Second)
		wait := time.Until(last.Add(period))
		if err := pause.For(ctx, wait); err != nil {
			return
		}
		last = time.Now()
		if err := m.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.onError(fmt.Errorf("reload manifest: %w", err))
		}
	}
}

// errNotMedia reports a body that is not what its request expected.
var errNotMedia = errors.New("not a media fragment")

// readLimited reads at most limit bytes; more is an error.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return data, err
	}
	if int64(len(data)) > limit {
		return data, fmt.Errorf("body larger than %d bytes", limit)
	}
	return data, nil
}

// setActive marks rendition id as the one in use for kind.
func (m *manifests) setActive(k Kind, id string) {
	m.mu.Lock()
	m.active[k] = id
	m.mu.Unlock()
}

// activeID returns the ID of the rendition in use for kind.
func (m *manifests) activeID(k Kind) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active[k]
}

// mediaURI returns the media playlist URI of rendition id on the current
// pathway, "" when unknown.
func (h *hlsSource) mediaURI(id string) string {
	if h.master == nil {
		return ""
	}
	view := h.master.pathwayView(h.paths.current())
	for _, v := range view.variants {
		if v.id == id {
			return v.uri
		}
	}
	for _, r := range view.media {
		if r.id == id && r.uri != "" {
			return r.uri
		}
	}
	return ""
}
