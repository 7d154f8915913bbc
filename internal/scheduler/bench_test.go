package scheduler

// The control-plane benchmark of bench/scheduler.sh: a real `sluice
// scheduler` process against simulated senders, a simulated origin and N
// simulated players, all in this test process; the scheduler's CPU time
// (utime+stime from /proc) over a measurement window gives its cost per
// session-second. It runs only when SLUICE_SCHED_BENCH_BIN names the sluice
// binary (not in CI).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/sender"
	"github.com/sluice-media/sluice/internal/store"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// simSender is a sender that takes every pin and returns the sent reports
// and shared reloads the simulated players queue for it. Its players'
// pathway playlist reloads go through share, the real sender's shared
// copies (sender.SharedPlaylists), as they would at a sender.
type simSender struct {
	srv     *http.Server
	url     string
	share   *sender.SharedPlaylists
	mu      sync.Mutex
	reports []cluster.SentReport
	reloads []cluster.Reload
	batches atomic.Int64
	ops     atomic.Int64
	proof   http.HandlerFunc // answers the scheduler's membership challenge
}

func (f *simSender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/internal/v1/batch":
		// The binary encoding, or JSON from a scheduler that predates it
		// (bench/scheduler.sh BASE_REV).
		binary := r.Header.Get("Content-Type") == cluster.BatchContentType
		var b cluster.Batch
		var err error
		if binary {
			b, err = readBatch(r)
		} else {
			err = json.NewDecoder(r.Body).Decode(&b)
		}
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.batches.Add(1)
		f.ops.Add(int64(len(b.LookAhead) + len(b.Send) + len(b.Cancel)))
		f.mu.Lock()
		res := cluster.BatchResult{Sent: f.reports, Reloads: f.reloads}
		f.reports, f.reloads = nil, nil
		f.mu.Unlock()
		if binary {
			writeBatchResult(w, res)
		} else {
			json.NewEncoder(w).Encode(res)
		}
	case clusterauth.ProofPath:
		f.proof(w, r)
	case "/internal/v1/stats":
		json.NewEncoder(w).Encode(cluster.SenderStats{})
	default:
		http.NotFound(w, r)
	}
}

func (f *simSender) sent(r cluster.SentReport) {
	f.mu.Lock()
	f.reports = append(f.reports, r)
	f.mu.Unlock()
}

func (f *simSender) reloaded(r cluster.Reload) {
	f.mu.Lock()
	f.reloads = append(f.reloads, r)
	f.mu.Unlock()
}

// simOrigin serves view.json: a live point whose window advances with the
// clock (2 s fragments, 2 video tracks and audio, 60 fragments), and a
// 10-minute on-demand point.
type simOrigin struct {
	start time.Time
}

func (o *simOrigin) view(name string) (store.View, bool) {
	mk := func(id, kind string, br int, first, n int64) store.TrackView {
		t := store.TrackView{ID: id, First: first, Info: media.TrackInfo{Kind: kind, Timescale: 1000, Bitrate: br,
			Codec: "avc1.64001F", SampleEntry: "avc1", Width: 640, Height: 360}}
		if kind == "audio" {
			t.Info.Codec, t.Info.SampleEntry = "mp4a.40.2", "mp4a"
		}
		for i := first; i < first+n; i++ {
			t.Frags = append(t.Frags, store.FragRef{Start: i * 2000, Duration: 2000, Size: 200000, Key: true})
		}
		return t
	}
	switch name {
	case "live":
		edge := int64(time.Since(o.start)/(2*time.Second)) + 60
		first := edge - 60
		return store.View{Name: name, Meta: store.PointMeta{Anchor: o.start.Add(-120 * time.Second)},
			Tracks: []store.TrackView{mk("v1", "video", 1000000, first, 60), mk("v2", "video", 500000, first, 60), mk("a", "audio", 128000, first, 60)}}, true
	case "vod":
		return store.View{Name: name, Meta: store.PointMeta{VOD: true, Anchor: o.start},
			Tracks: []store.TrackView{mk("v1", "video", 1000000, 0, 300), mk("v2", "video", 500000, 0, 300), mk("a", "audio", 128000, 0, 300)}}, true
	}
	return store.View{}, false
}

func (o *simOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), ".isml/view.json")
	v, ok := o.view(name)
	if !ok {
		http.NotFound(w, r)
		return
	}
	json.NewEncoder(w).Encode(v)
}

func serveOn(t *testing.T, h http.Handler) (string, *http.Server) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String(), srv
}

// procCPU is a process's user+system CPU time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100, nil // USER_HZ
}

// benchConn is one keep-alive connection of the load generator: a raw
// HTTP/1.1 client (request line out, status, Content-Length and body in),
// far cheaper than net/http's client with a goroutine per player, so that
// the generator reaches the load it is asked for on the scheduler's cores.
type benchConn struct {
	st    *genStats
	addr  string
	local net.Addr // source address (loopback has ~28 000 ports per pair)
	c     net.Conn
	r     *bufio.Reader
	req   []byte
	body  []byte
	// sharedTTL is the last answer's cluster.SharedPlaylistHeader.
	sharedTTL time.Duration
}

// get fetches a path; the body is valid until the next call.
func (bc *benchConn) get(path string) ([]byte, error) {
	t0 := time.Now()
	defer func() { bc.st.latency(time.Since(t0)) }()
	for attempt := 0; ; attempt++ {
		b, retry, err := bc.try(path)
		if err == nil || !retry || attempt > 0 {
			return b, err
		}
	}
}

func (bc *benchConn) try(path string) (body []byte, retry bool, err error) {
	if bc.c == nil {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: bc.local}
		c, err := d.Dial("tcp", bc.addr)
		if err != nil {
			return nil, false, err
		}
		bc.c, bc.r = c, bufio.NewReaderSize(c, 4<<10)
		retry = false
	} else {
		retry = true // a keep-alive connection the server closed meanwhile
	}
	fail := func(err error) ([]byte, bool, error) {
		bc.c.Close()
		bc.c = nil
		return nil, retry, fmt.Errorf("%s: %w", path, err)
	}
	bc.c.SetDeadline(time.Now().Add(30 * time.Second))
	bc.req = append(append(append(bc.req[:0], "GET "...), path...), " HTTP/1.1\r\nHost: sched\r\n\r\n"...)
	if _, err := bc.c.Write(bc.req); err != nil {
		return fail(err)
	}
	line, err := bc.r.ReadSlice('\n')
	if err != nil {
		return fail(err)
	}
	retry = false
	if len(line) < 12 {
		return fail(fmt.Errorf("status line %q", line))
	}
	code, _ := strconv.Atoi(string(line[9:12]))
	n, closing := -1, false
	bc.sharedTTL = 0
	for {
		h, err := bc.r.ReadSlice('\n')
		if err != nil {
			return fail(err)
		}
		if len(h) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok {
			switch strings.ToLower(string(k)) {
			case "content-length":
				n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			case "connection":
				closing = bytes.EqualFold(bytes.TrimSpace(v), []byte("close"))
			case "sluice-shared-playlist":
				bc.sharedTTL = sender.ParseSharedTTL(string(bytes.TrimSpace(v)))
			}
		}
	}
	if n < 0 || n > 16<<20 {
		return fail(fmt.Errorf("no usable Content-Length (%d)", n))
	}
	if cap(bc.body) < n {
		bc.body = make([]byte, n)
	}
	bc.body = bc.body[:n]
	if _, err := io.ReadFull(bc.r, bc.body); err != nil {
		return fail(err)
	}
	if closing {
		bc.c.Close()
		bc.c = nil
	}
	if code != 200 {
		return nil, false, fmt.Errorf("%s: %d %.200s", path, code, bc.body)
	}
	return bc.body, false, nil
}

// benchPlayer is one simulated player: its session, the two media
// playlists it loads (the lowest video and the audio of its first
// pathway, as that pathway's sender asks for them: rel.m3u8), their tracks
// and the start of the next block of each.
type benchPlayer struct {
	i      int
	snd    *simSender // its first pathway's sender
	shared bool       // the sender answers its reloads from its copy
	sid    string
	steer  string
	pl     [2]string
	track  [2]string
	next   [2]int64
	opened bool
}

var (
	// In a master playlist: the first pathway's media playlists at a
	// sender (the track ID) and the steering server's URI (the session).
	benchPlMark  = []byte("/media.m3u8")
	benchSidMark = []byte(`SERVER-URI="/s/`)
)

// parseMaster finds the session ID, the first three media playlists'
// tracks (audio first, then the videos) and the sender (host:port) of the
// session's default pathway (EXT-X-CONTENT-STEERING PATHWAY-ID, where a
// player starts; the first pathway listed when there is none) of a master
// playlist.
func parseMaster(b []byte) (sid string, tracks []string, host string, ok bool) {
	if i := bytes.Index(b, benchSidMark); i >= 0 {
		rest := b[i+len(benchSidMark):]
		if j := bytes.Index(rest, []byte("/~")); j >= 0 {
			rest = rest[j+2:]
			if k := bytes.IndexByte(rest, '/'); k > 0 {
				sid = string(rest[:k])
			}
		}
	}
	rest := b
	// From the default pathway's block on: the master lists each
	// pathway's audio renditions (group "audio-<id>") and then its
	// variants (PATHWAY-ID="<id>").
	if id, after := steeringDefault(b); id != "" {
		for _, mark := range []string{`GROUP-ID="audio-` + id + `"`, `PATHWAY-ID="` + id + `"`} {
			if k := bytes.Index(b[after:], []byte(mark)); k >= 0 {
				rest = b[bytes.LastIndexByte(b[:after+k], '\n')+1:]
				break
			}
		}
	}
	for len(tracks) < 3 {
		i := bytes.Index(rest, benchPlMark)
		if i < 0 {
			break
		}
		j := bytes.LastIndexByte(rest[:i], '/')
		if j < 0 {
			break
		}
		tracks = append(tracks, string(rest[j+1:i]))
		if host == "" {
			if k := bytes.LastIndex(rest[:i], []byte("http://")); k >= 0 {
				h := rest[k+len("http://") : i]
				if e := bytes.IndexByte(h, '/'); e > 0 {
					host = string(h[:e])
				}
			}
		}
		rest = rest[i+len(benchPlMark):]
	}
	return sid, tracks, host, sid != "" && len(tracks) == 3 && host != ""
}

// steeringDefault is the PATHWAY-ID of a master playlist's
// EXT-X-CONTENT-STEERING tag ("" without one) and the offset after the
// tag's line.
func steeringDefault(b []byte) (id string, after int) {
	i := bytes.Index(b, []byte("#EXT-X-CONTENT-STEERING:"))
	if i < 0 {
		return "", 0
	}
	line, _, _ := bytes.Cut(b[i:], []byte("\n"))
	_, v, ok := bytes.Cut(line, []byte(`PATHWAY-ID="`))
	if !ok {
		return "", 0
	}
	v, _, _ = bytes.Cut(v, []byte(`"`))
	return string(v), i + len(line)
}

// segmentFromEnd returns the start of the k-th segment from the end
// (1: the last) of a pathway playlist (lines "<start>.m4s"), and how many
// segments it found on the way.
func segmentFromEnd(b []byte, k int) (int64, bool) {
	end := len(b)
	for n := 0; ; {
		i := bytes.LastIndex(b[:end], []byte(".m4s\n"))
		if i < 0 {
			return 0, false
		}
		j := bytes.LastIndexByte(b[:i], '\n')
		if n++; n == k {
			v, err := strconv.ParseInt(string(b[j+1:i]), 10, 64)
			return v, err == nil
		}
		end = i
	}
}

// genStats are the load generator's counters, and its requests' latency
// in 0.1 ms steps up to 10 s.
type genStats struct {
	// manifests are the playlists players loaded; fetched, those the
	// scheduler answered (the rest came from a sender's shared copy).
	manifests, fetched, steering, errs atomic.Int64
	firstErr                           atomic.Value
	lat                                [100001]atomic.Int64
}

// latency records one request's time.
func (g *genStats) latency(d time.Duration) {
	g.lat[min(int(d/(100*time.Microsecond)), len(g.lat)-1)].Add(1)
}

// percentiles returns the p50, p99 and max latency (ms) of the requests
// recorded since snap (a copy of lat taken before).
func (g *genStats) percentiles(snap []int64) (p50, p99, mx float64) {
	d := make([]int64, len(g.lat))
	var n int64
	for i := range g.lat {
		d[i] = g.lat[i].Load() - snap[i]
		n += d[i]
	}
	var c int64
	for i, v := range d {
		if v == 0 {
			continue
		}
		c += v
		if p50 == 0 && c*2 >= n {
			p50 = float64(i) / 10
		}
		if p99 == 0 && c*100 >= 99*n {
			p99 = float64(i) / 10
		}
		mx = float64(i) / 10
	}
	return p50, p99, mx
}

func (g *genStats) snapshot() []int64 {
	out := make([]int64, len(g.lat))
	for i := range g.lat {
		out[i] = g.lat[i].Load()
	}
	return out
}

func (g *genStats) fail(err error) {
	if g.errs.Add(1) == 1 {
		g.firstErr.Store(err.Error())
	}
}

// runPlayers drives players over conns connections until ctx ends: each
// connection's goroutine plays its players in turn, each every 2 s (one
// fragment) from its own opening time on (spread over openSpan): open with
// the master playlist, then poll the steering manifest (every 2 s, the
// default TTL) and (live, or the first time) reload the two playlists and
// fetch the next block of each, whose first owner reports the send; an
// on-demand player then only fetches.
func runPlayers(ctx context.Context, addr, mode string, sessions, conns int, openSpan time.Duration,
	senders map[string]*simSender, report func(sid string, b cluster.BlockID), st *genStats) *sync.WaitGroup {
	var wg sync.WaitGroup
	t0 := time.Now()
	for c := 0; c < conns; c++ {
		var ps []*benchPlayer
		for i := c; i < sessions; i += conns {
			ps = append(ps, &benchPlayer{i: i})
		}
		if len(ps) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 4 000 connections per loopback source address (about 28 000
			// ports each), starting at an address of this run's, so that
			// the previous run's connections in TIME_WAIT are elsewhere.
			src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+(os.Getpid()%50*5+c/4000)%250))}
			bc := &benchConn{addr: addr, st: st, local: src}
			defer func() {
				if bc.c != nil {
					bc.c.Close()
				}
			}()
			due := func(p *benchPlayer, round int) time.Time {
				return t0.Add(openSpan*time.Duration(p.i)/time.Duration(sessions) + time.Duration(round)*2*time.Second)
			}
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for round := 0; ; round++ {
				for _, p := range ps {
					if d := time.Until(due(p, round)); d > 0 {
						timer.Reset(d)
						select {
						case <-ctx.Done():
							return
						case <-timer.C:
						}
					} else if ctx.Err() != nil {
						return
					}
					p.step(bc, mode, senders, report, st)
				}
			}
		}()
	}
	return &wg
}

// step is one 2-second round of a player.
func (p *benchPlayer) step(bc *benchConn, mode string, senders map[string]*simSender, report func(string, cluster.BlockID), st *genStats) {
	if !p.opened {
		body, err := bc.get("/s/" + mode + "/master.m3u8")
		if err != nil {
			st.fail(err)
			return
		}
		st.manifests.Add(1)
		st.fetched.Add(1)
		sid, tracks, host, ok := parseMaster(body)
		if !ok || senders[host] == nil {
			st.fail(fmt.Errorf("master playlist (pathway sender %q): %.200s", host, body))
			return
		}
		p.snd = senders[host]
		base := "/s/" + mode + "/~" + sid + "/"
		p.sid, p.steer, p.opened = sid, base+"steering.json", true
		// The audio rendition and the lowest video.
		p.track = [2]string{tracks[0], tracks[2]}
		for j, t := range p.track {
			p.pl[j] = base + t + "/rel.m3u8"
		}
		return
	}
	if _, err := bc.get(p.steer); err != nil {
		st.fail(err)
	} else {
		st.steering.Add(1)
	}
	for j := range p.pl {
		if mode != "live" && p.next[j] != 0 {
			// On-demand: the playlist is loaded once; the player
			// fetches the next block of each track.
			report(p.sid, cluster.BlockID{Point: mode, Track: p.track[j], Start: p.next[j]})
			p.next[j] += 2000
			continue
		}
		body, err := p.reload(bc, mode, j, st)
		if err != nil {
			st.fail(err)
			continue
		}
		st.manifests.Add(1)
		// The block to fetch: the one after the last fetched, or at first
		// a few behind the edge (live) or at the session's own position
		// (on-demand: sessions open at the start, their renderings
		// shared, and then jump, as a seek does).
		next := p.next[j]
		if next == 0 {
			k := 4
			if mode != "live" {
				k = 1 + (p.i*37)%100
			}
			v, ok := segmentFromEnd(body, k)
			if !ok {
				continue
			}
			next = v
		} else if !bytes.Contains(body, []byte("\n"+strconv.FormatInt(next, 10)+".m4s\n")) {
			continue
		}
		p.next[j] = next + 2000
		report(p.sid, cluster.BlockID{Point: mode, Track: p.track[j], Start: next})
	}
}

// reload loads the pathway playlist of the player's track j as its
// sender would answer it: from the sender's shared copy once the scheduler
// marked the session's answer as shared (reporting the reload in the
// sender's next batch result), else from the scheduler.
func (p *benchPlayer) reload(bc *benchConn, mode string, j int, st *genStats) ([]byte, error) {
	key := sender.SharedKey{Scheduler: bc.addr, Point: mode, Track: p.track[j]}
	var done func(sender.SharedPlaylist, time.Duration)
	if p.shared {
		pl, ok, d := p.snd.share.Get(context.Background(), key)
		if ok {
			p.snd.reloaded(cluster.Reload{Session: p.sid, Point: mode, Track: p.track[j], At: time.Now()})
			return pl.Body, nil
		}
		done = d
	}
	body, err := bc.get(p.pl[j])
	if err == nil {
		st.fetched.Add(1)
	}
	ttl := bc.sharedTTL
	if err != nil {
		ttl = 0
	}
	p.shared = ttl > 0
	pl := sender.SharedPlaylist{Body: bytes.Clone(body)}
	if done != nil {
		done(pl, ttl)
	} else if ttl > 0 {
		p.snd.share.Put(key, pl, ttl)
	}
	return body, err
}

// cpuTotals is the machine's busy and total CPU time (/proc/stat).
func cpuTotals() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		d := time.Duration(n) * time.Second / 100
		total += d
		if i != 3 && i != 4 { // idle, iowait
			busy += d
		}
	}
	return busy, total
}

func TestControlPlaneBench(t *testing.T) {
	bin := os.Getenv("SLUICE_SCHED_BENCH_BIN")
	if bin == "" {
		t.Skip("control-plane benchmark: run bench/scheduler.sh (SLUICE_SCHED_BENCH_BIN unset)")
	}
	sessions := envInt("SESSIONS", 1000)
	nSenders := envInt("SENDERS", 4)
	warm := time.Duration(envInt("WARMUP_S", 10)) * time.Second
	window := time.Duration(envInt("WINDOW_S", 20)) * time.Second
	// One keep-alive connection per player, as real players have, up to
	// 18 000: both processes stay under a file limit of 20 000.
	conns := min(envInt("CONNS", 18000), sessions)
	// Open the sessions over 5 s, or at most 2 000 a second.
	openSpan := max(5*time.Second, time.Duration(sessions)*time.Second/2000)
	mode := os.Getenv("MODE")
	if mode == "" {
		mode = "live"
	}

	originURL, _ := serveOn(t, &simOrigin{start: time.Now()})
	keys := clusterauth.NewKeys([]byte("bench"))
	senders := map[string]*simSender{}
	var list []string
	for i := 0; i < nSenders; i++ {
		f := &simSender{share: sender.NewSharedPlaylists(nil)}
		f.proof = keys.ProofHandler(func() (string, string) { return strings.TrimPrefix(f.url, "http://"), f.url })
		f.url, f.srv = serveOn(t, f)
		senders[strings.TrimPrefix(f.url, "http://")] = f
		list = append(list, f.url)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "scheduler", "--listen", addr, "--origin", originURL, "--senders", strings.Join(list, ","),
		"--cluster-secret", "bench", "--log-level", "warn", "--session-idle", "30s", "--open-rate", "0")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 200 {
			t.Fatal("scheduler did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Wait for the senders to be proven and live.
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/s/" + mode + "/master.m3u8")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 200 {
			t.Fatal("scheduler has no live sender")
		}
		time.Sleep(100 * time.Millisecond)
	}

	ids := sortedIDs(senders)
	report := func(sid string, b cluster.BlockID) {
		owner := cluster.Owners(b.Key(), ids, 2)[0]
		senders[owner].sent(cluster.SentReport{Session: sid, Block: b, At: time.Now(), Bytes: 200000, FromRAM: true})
	}
	var st genStats
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Now()
	wg := runPlayers(ctx, addr, mode, sessions, conns, openSpan, senders, report, &st)
	defer wg.Wait()
	defer cancel()
	time.Sleep(openSpan)
	t.Logf("%d sessions opening over %v on %d connections (%d errors so far)", sessions, openSpan, conns, st.errs.Load())
	time.Sleep(warm)
	cpu0, _ := procCPU(cmd.Process.Pid)
	gen0, _ := procCPU(os.Getpid())
	busy0, total0 := cpuTotals()
	m0, f0, s0, b0, o0 := st.manifests.Load(), st.fetched.Load(), st.steering.Load(), totalBatches(senders), totalOps(senders)
	lat0 := st.snapshot()
	w0 := time.Now()
	time.Sleep(window)
	cpu1, _ := procCPU(cmd.Process.Pid)
	gen1, _ := procCPU(os.Getpid())
	busy1, total1 := cpuTotals()
	el := time.Since(w0)
	m1, f1, s1, b1, o1 := st.manifests.Load(), st.fetched.Load(), st.steering.Load(), totalBatches(senders), totalOps(senders)
	rss := procRSS(cmd.Process.Pid)
	p50, p99, pmax := st.percentiles(lat0)
	cancel()
	_ = t0
	cpu, gen := cpu1-cpu0, gen1-gen0
	ncpu := float64(total1-total0) / float64(el) // CPUs the machine accounted
	other := float64(busy1-busy0-cpu-gen) / float64(el)
	perSS := float64(cpu.Microseconds()) / (float64(sessions) * el.Seconds())
	// A live player reloads two media playlists per fragment (2 s): the
	// load asked for is one playlist per session-second and a steering
	// request per two. When the generator cannot make it, the figure per
	// session-second is not reached: the line says how much of it was.
	mps := float64(m1-m0) / el.Seconds()
	sps := float64(s1-s0) / el.Seconds()
	load := 1.0
	if mode == "live" {
		load = mps / float64(sessions)
	}
	fps := float64(f1-f0) / el.Seconds()
	fmt.Printf("RESULT mode=%s sessions=%d senders=%d conns=%d window=%.1fs cpu=%.2fs (%.0f%% of a core) us_per_session_second=%.1f manifests/s=%.0f (%.0f%% of the live load; %.0f/s from the scheduler, the rest from senders' shared copies) steering/s=%.0f (%.0f%% of the intended) us_per_scheduler_request_incl_share=%.1f batches/s=%.1f ops/s=%.0f rss_mb=%.0f latency_ms p50=%.1f p99=%.1f max=%.1f generator_cpu=%.0f%% other_cpu=%.0f%% (of %.1f CPUs) errors=%d\n",
		mode, sessions, nSenders, conns, el.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/el.Seconds(), perSS,
		mps, 100*load, fps, sps, 100*sps/(float64(sessions)/2), float64(cpu.Microseconds())/max(float64(f1-f0+s1-s0), 1),
		float64(b1-b0)/el.Seconds(), float64(o1-o0)/el.Seconds(), rss, p50, p99, pmax, 100*gen.Seconds()/el.Seconds(), 100*other, ncpu, st.errs.Load())
	if e := st.firstErr.Load(); e != nil {
		fmt.Printf("first error: %v\n", e)
	}
	if st.errs.Load() > int64(sessions/100) {
		t.Errorf("%d errors; the first: %v", st.errs.Load(), st.firstErr.Load())
	}
}

func sortedIDs(m map[string]*simSender) []string {
	var out []string
	for id := range m {
		out = append(out, id)
	}
	return out
}

func totalBatches(m map[string]*simSender) (n int64) {
	for _, f := range m {
		n += f.batches.Load()
	}
	return n
}

func totalOps(m map[string]*simSender) (n int64) {
	for _, f := range m {
		n += f.ops.Load()
	}
	return n
}

// procRSS is a process's resident set in MB.
func procRSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// TestParseMaster: the benchmark's players start on their session's
// default pathway (its audio group and variants), not the first listed.
func TestParseMaster(t *testing.T) {
	master := []byte(`#EXTM3U
#EXT-X-CONTENT-STEERING:SERVER-URI="/s/live/~abc/steering.json",PATHWAY-ID="p2"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio-p1",NAME="a",URI="http://h1:1/b/t/live/a/media.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="audio-p1",PATHWAY-ID="p1"
http://h1:1/b/t/live/v1/media.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2,AUDIO="audio-p1",PATHWAY-ID="p1"
http://h1:1/b/t/live/v2/media.m3u8
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio-p2",NAME="a",URI="http://h2:2/b/t/live/a/media.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="audio-p2",PATHWAY-ID="p2"
http://h2:2/b/t/live/v1/media.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2,AUDIO="audio-p2",PATHWAY-ID="p2"
http://h2:2/b/t/live/v2/media.m3u8
`)
	sid, tracks, host, ok := parseMaster(master)
	if !ok || sid != "abc" || host != "h2:2" || strings.Join(tracks, ",") != "a,v1,v2" {
		t.Fatalf("parseMaster: %q %v %q %v", sid, tracks, host, ok)
	}
}
