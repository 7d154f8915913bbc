package pacing

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/httpx"
	"github.com/sluice-media/sluice/internal/metrics"
	"github.com/sluice-media/sluice/internal/sfv"
)

// Source says what decided the pacing of a response.
type Source uint8

// Sources, in precedence order where they compete.
const (
	SrcNone     Source = iota // no specification and no server estimate: unpaced
	SrcSpec                   // the player's explicit specification
	SrcRTP                    // CMCD rtp
	SrcEstimate               // the server's bottleneck estimate
	SrcFirst                  // first response of a connection (server estimate): unpaced
	SrcProbe                  // periodic probe, paced above the estimate; or no estimate yet: unpaced
	SrcUrgent                 // CMCD su, bs or bl at or below min_buffer: unpaced
	SrcOff                    // the specification said off: unpaced
	SrcShared                 // HTTP/2 with another media stream active: socket left as is
	SrcSmall                  // server estimate: a small object (CMCD br × d), paced at smallObjectGain × br
	numSources
)

var sourceNames = [numSources]string{"none", "spec", "rtp", "estimate", "first", "probe", "urgent", "off", "shared", "small"}

// String returns the token used in CMSD (com.sluice-src) and in metrics.
func (s Source) String() string {
	if s < numSources {
		return sourceNames[s]
	}
	return "unknown"
}

// Pacer applies per-response TCP pacing to media responses and reports
// server metadata (CMSD). Create it with New, put Middleware in front of
// the media routes, use ConnContext as the http.Server's ConnContext and
// run Run for the CPU sampler.
type Pacer struct {
	cfg              config.Pacing
	m                *metrics.Metrics
	log              *slog.Logger
	client, server   bool
	minRate, maxRate uint64 // bytes/s
	minBufferMs      int64
	id               []byte // CMSD-Dynamic list item: the quoted server id

	cpuBits atomic.Uint64 // float64 bits of the smoothed load; NaN: unknown
	hiCPU   atomic.Bool   // load above cpu_high (with hysteresis)
	raised  atomic.Bool   // tcp_min_tso_segs raised by us
	minTSO  atomic.Uint32 // net.ipv4.tcp_min_tso_segs
	rttLog  atomic.Uint32 // net.ipv4.tcp_tso_rtt_log

	sys      sysctl
	procStat string
	origTSO  int // tcp_min_tso_segs before we raised it (Run's goroutine only)
	// hiLog rate-limits the log line of entering high-CPU mode (Run's
	// goroutine only).
	hiLog hiCPULog

	responses [numSources]prometheus.Counter
	rates     [numSources]prometheus.Observer
	bytes     [2]prometheus.Counter  // unpaced, paced
	retrans   [2]prometheus.Observer // unpaced, paced
}

// New returns a pacer for a configuration (validated by config.Validate).
// m may be nil (no metrics).
func New(cfg config.Pacing, m *metrics.Metrics, log *slog.Logger) *Pacer {
	p := &Pacer{
		cfg:         cfg,
		m:           m,
		log:         log,
		client:      cfg.Mode == config.PacingClient || cfg.Mode == config.PacingBoth,
		server:      cfg.Mode == config.PacingServer || cfg.Mode == config.PacingBoth,
		minRate:     uint64(cfg.MinRateKbps) * 125,
		maxRate:     uint64(cfg.MaxRateKbps) * 125,
		minBufferMs: cfg.MinBuffer.Milliseconds(),
		id:          sfv.AppendString(nil, cfg.ServerID),
		sys:         sysctl{dir: "/proc/sys/net/ipv4"},
		procStat:    "/proc/stat",
	}
	p.cpuBits.Store(math.Float64bits(math.NaN()))
	p.minTSO.Store(2)
	p.rttLog.Store(9)
	p.readSysctls()
	if m != nil {
		for s := range numSources {
			p.responses[s] = m.PacingResponses.WithLabelValues(s.String())
		}
		for _, s := range []Source{SrcSpec, SrcRTP, SrcEstimate, SrcProbe, SrcShared, SrcSmall} { // the sources that pace
			p.rates[s] = m.PacingRate.WithLabelValues(s.String())
		}
		p.bytes[0], p.bytes[1] = m.PacingBytes.WithLabelValues("unpaced"), m.PacingBytes.WithLabelValues("paced")
		p.retrans[0], p.retrans[1] = m.PacingRetrans.WithLabelValues("unpaced"), m.PacingRetrans.WithLabelValues("paced")
	}
	return p
}

// Enabled reports whether the pacer does anything (mode is not off).
func (p *Pacer) Enabled() bool { return p != nil && (p.client || p.server) }

// readSysctls refreshes the kernel settings the burst model needs.
func (p *Pacer) readSysctls() {
	if v, err := p.sys.get("tcp_min_tso_segs"); err == nil && v > 0 {
		p.minTSO.Store(uint32(v))
	}
	if v, err := p.sys.get("tcp_tso_rtt_log"); err == nil && v >= 0 {
		p.rttLog.Store(uint32(v))
	}
}

// CPULoad returns the smoothed machine CPU load (0..1); ok is false until
// Run has sampled twice.
func (p *Pacer) CPULoad() (float64, bool) {
	v := math.Float64frombits(p.cpuBits.Load())
	return v, !math.IsNaN(v)
}

// Run samples the CPU load once a second until ctx ends, and raises or
// restores the burst size with it (cpu_high, cpu_burst). It restores the
// sysctl it changed before returning.
func (p *Pacer) Run(ctx context.Context) {
	if !p.Enabled() {
		return
	}
	cs := cpuSampler{path: p.procStat}
	cs.sample()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	defer p.setHighCPU(false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.cpuTick(&cs)
	}
}

// cpuTick takes one CPU sample: an exponential average over about 3 s,
// entering high-CPU mode at cpu_high and leaving it 0.1 below.
func (p *Pacer) cpuTick(cs *cpuSampler) {
	load, ok, err := cs.sample()
	if err != nil {
		p.log.Debug("pacing: cpu sample", "err", err)
		return
	}
	if !ok {
		return
	}
	if prev, known := p.CPULoad(); known {
		load = 0.6*prev + 0.4*load
	}
	p.cpuBits.Store(math.Float64bits(load))
	if p.m != nil {
		p.m.PacingCPU.Set(load)
	}
	hi := p.hiCPU.Load()
	switch {
	case !hi && load >= p.cfg.CPUHigh:
		p.setHighCPU(true)
	case hi && load < p.cfg.CPUHigh-0.1:
		p.setHighCPU(false)
	}
	p.readSysctls()
}

// setHighCPU enters or leaves high-CPU mode. With cpu_burst set it raises
// net.ipv4.tcp_min_tso_segs (the smallest TSO/GSO packet, hence burst, the
// kernel's pacing sends; the rate is kept) and restores it afterwards,
// unless someone else changed it meanwhile.
func (p *Pacer) setHighCPU(on bool) {
	if p.hiCPU.Swap(on) == on && on {
		return
	}
	if p.cfg.CPUBurst <= 0 {
		if on {
			if n, ok := p.hiLog.due(time.Now()); ok {
				p.log.Info("pacing: machine CPU load at or above cpu_high; players are told so (CMSD com.sluice-hicpu), rates and bursts unchanged (cpu_burst is 0); logged at most every "+hiCPULogEvery.String(),
					"load", math.Float64frombits(p.cpuBits.Load()), "cpu_high", p.cfg.CPUHigh, "episodes", n)
			}
		}
		return
	}
	const name = "tcp_min_tso_segs"
	if on {
		cur, err := p.sys.get(name)
		if err != nil || cur >= p.cfg.CPUBurst {
			return
		}
		if err := p.sys.set(name, p.cfg.CPUBurst); err != nil {
			p.log.Warn("pacing: cannot raise the burst size", "err", err)
			return
		}
		p.origTSO = cur
		p.raised.Store(true)
		p.minTSO.Store(uint32(p.cfg.CPUBurst))
		if n, ok := p.hiLog.due(time.Now()); ok {
			p.log.Info("pacing: machine CPU load at or above cpu_high: bursts raised (fewer pacing timer wakeups), rates kept; logged at most every "+hiCPULogEvery.String(),
				"load", math.Float64frombits(p.cpuBits.Load()), "cpu_high", p.cfg.CPUHigh, "tcp_min_tso_segs", p.cfg.CPUBurst, "was", cur, "episodes", n)
		}
		return
	}
	if !p.raised.Swap(false) {
		return
	}
	if cur, err := p.sys.get(name); err == nil && cur == p.cfg.CPUBurst {
		if err := p.sys.set(name, p.origTSO); err != nil {
			p.log.Warn("pacing: cannot restore the burst size", "err", err)
			return
		}
		p.minTSO.Store(uint32(p.origTSO))
	}
	p.log.Debug("pacing: CPU load back below cpu_high: bursts restored", "tcp_min_tso_segs", p.origTSO)
}

// hiCPULogEvery is the least time between two log lines of entering
// high-CPU mode. A machine near cpu_high crosses it back and forth every
// few seconds (the mode has 0.1 of hysteresis over a 3 s average); one
// line with the count of episodes says the same as one line each.
const hiCPULogEvery = 15 * time.Minute

// hiCPULog counts the entries into high-CPU mode and says when one is to be
// logged: the first, then at most one every hiCPULogEvery.
type hiCPULog struct {
	last     time.Time
	episodes int // entries since the last logged one, that one included
}

// due records an entry at now and reports whether to log it, with the
// number of entries the line stands for.
func (l *hiCPULog) due(now time.Time) (int, bool) {
	l.episodes++
	if !l.last.IsZero() && now.Sub(l.last) < hiCPULogEvery {
		return 0, false
	}
	n := l.episodes
	l.last, l.episodes = now, 0
	return n, true
}

// Middleware paces the responses of next for which match returns true
// (media: fragments and init segments). Other requests pass untouched. With
// mode off it returns next itself. The server must use ConnContext: a
// request whose connection has no pacing state passes unpaced.
func (p *Pacer) Middleware(next http.Handler, match func(*http.Request) bool) http.Handler {
	if !p.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !match(r) {
			next.ServeHTTP(w, r)
			return
		}
		p.serve(w, r, next)
	})
}

// input is what a request says about its pacing.
type input struct {
	spec    Spec
	hasSpec bool
	cmcd    CMCD
	hasCMCD bool
	via     Via
}

// decision is the pacing of one response.
type decision struct {
	src      Source
	rate     uint64 // bytes/s; 0: unpaced
	phase    Phase
	perPhase bool
	burst    int     // effective segments per burst (paced only)
	gapMs    float64 // effective gap between bursts
	cpuBurst bool    // burst raised for CPU load
	urgent   string  // su, bs or bl
	watch    bool    // start a response watcher
	measure  bool    // the watcher measures for the server estimate
	probe    bool    // a probe of the server estimate (paced above it)
	floor    uint64  // the lowest pace allowed (brFloor × CMCD br), bytes/s
}

// readInput parses the side channel of r; the cheap presence checks come
// first so that a request without CMCD and Sluice-Pacing costs a few map
// lookups.
func (p *Pacer) readInput(r *http.Request, cs *connState) input {
	var in input
	var errSpec, errCMCD error
	if p.client && len(r.Header[headerKey]) > 0 {
		in.spec, in.hasSpec, errSpec = ParseSpec(r)
		if in.hasSpec {
			in.via |= ViaSluice
		}
	}
	if hasCMCD(r) {
		in.cmcd, errCMCD = ParseCMCD(r)
		in.hasCMCD = true
		in.via |= in.cmcd.Via
		if p.client && in.cmcd.Spec.Present() {
			in.spec.merge(&in.cmcd.Spec) // the header wins over the custom keys
			in.hasSpec = true
		}
	}
	if errSpec != nil || errCMCD != nil {
		if p.m != nil {
			p.m.PacingMalformed.Inc()
		}
		lvl := slog.LevelDebug
		cs.mu.Lock()
		if !cs.warned {
			cs.warned, lvl = true, slog.LevelWarn
		}
		cs.mu.Unlock()
		p.log.Log(r.Context(), lvl, "pacing: malformed side channel ignored",
			"path", r.URL.Path, "remote", r.RemoteAddr, "sluice_pacing", errSpec, "cmcd", errCMCD)
	}
	return in
}

// clamp bounds a rate in bytes/s.
func (p *Pacer) clamp(rate uint64) uint64 { return min(max(rate, p.minRate), p.maxRate) }

// estimateRate is the pace of a response from the server estimate est
// (bytes/s): fraction × est, never below floor (brFloor × the object's
// bitrate), clamped.
func (p *Pacer) estimateRate(est, floor uint64) uint64 {
	return p.clamp(max(uint64(p.cfg.Fraction*float64(est)), floor))
}

// brFloorRate is brFloor × the object's encoded bitrate (CMCD br) in
// bytes/s; 0 when the request does not say.
func brFloorRate(in *input) uint64 {
	if !in.hasCMCD || in.cmcd.BR <= 0 {
		return 0
	}
	return uint64(brFloor * float64(in.cmcd.BR) * 125)
}

// objectSize returns the object's size as CMCD br × d tells it, bytes;
// -1 when the request does not say.
func objectSize(in *input) int64 {
	if c := &in.cmcd; in.hasCMCD && c.BR > 0 && c.D > 0 {
		return c.BR * 125 * c.D / 1000
	}
	return -1
}

// mayMeasure reports whether a response can measure the path, as far as
// the request tells: CMCD br × d (the object's size) at least
// minMeasureBytes; without them, anything but an audio object (ot=a).
func mayMeasure(in *input) bool {
	if n := objectSize(in); n >= 0 {
		return n >= minMeasureBytes
	}
	return !in.hasCMCD || in.cmcd.OT != "a"
}

// smallRate is the pace of a small object (CMCD br × d under
// minMeasureBytes): smallObjectGain × br, at most the estimate's pace when
// there is one; 0 when the object is not known to be small.
func (p *Pacer) smallRate(in *input, est, floor uint64) uint64 {
	if n := objectSize(in); n < 0 || n >= minMeasureBytes {
		return 0
	}
	rate := uint64(smallObjectGain * float64(in.cmcd.BR) * 125)
	if est > 0 {
		rate = min(rate, p.estimateRate(est, floor))
	}
	return p.clamp(max(rate, floor))
}

// probeDue reports whether the connection's periodic probe is due:
// reprobe_every responses or reprobe_interval since the last one.
func (p *Pacer) probeDue(cs *connState, now time.Time) bool {
	return (p.cfg.ReprobeEvery > 0 && cs.sinceProbe >= p.cfg.ReprobeEvery-1) ||
		(p.cfg.ReprobeInterval > 0 && now.Sub(cs.lastProbe) >= p.cfg.ReprobeInterval)
}

// probeUseless reports whether a probe could not help the player: the pace
// from the estimate already carries the top bitrate of the ladder (CMCD
// tb) with the headroom an ABR wants before it switches up.
func probeUseless(in *input, pace uint64) bool {
	return in.hasCMCD && in.cmcd.TB > 0 && float64(pace) >= topHeadroom*float64(in.cmcd.TB)*125
}

// decide picks the pacing of a response: urgent requests are never paced;
// then explicit specification > CMCD rtp > server estimate > none.
func (p *Pacer) decide(cs *connState, ti *unix.TCPInfo, in *input, now time.Time) decision {
	var d decision
	if in.hasCMCD {
		switch c := &in.cmcd; {
		case c.SU:
			d.src, d.urgent = SrcUrgent, "su"
		case c.BS:
			d.src, d.urgent = SrcUrgent, "bs"
		case c.BL >= 0 && c.BL <= p.minBufferMs:
			d.src, d.urgent = SrcUrgent, "bl"
		}
		if d.src == SrcUrgent {
			// Unpaced: with the server estimate it measures the path.
			d.watch, d.measure = p.server, p.server
			return d
		}
	}
	if p.client && in.hasSpec {
		if in.spec.Off {
			d.src = SrcOff
			return d
		}
		d.perPhase = in.spec.PerPhase()
		if d.perPhase {
			d.phase = phaseOf(ti, cs.congestion(), func() uint32 { return bbrPacingGain(cs.rc) })
			d.watch = true
		}
		if rate := specRate(&in.spec, d.phase, ti.Snd_mss); rate > 0 {
			d.src, d.rate = SrcSpec, p.clamp(rate)
			return d
		}
		d.perPhase, d.watch = false, false // the spec gives no rate: fall through
	}
	if p.client && in.hasCMCD && in.cmcd.RTP > 0 {
		rate := uint64(in.cmcd.RTP) * 125
		if in.cmcd.BR > 0 { // never below 1.2 x the object's bitrate
			rate = max(rate, uint64(in.cmcd.BR)*150)
		}
		d.src, d.rate = SrcRTP, p.clamp(rate)
		return d
	}
	if !p.server {
		return d
	}
	// Server estimate: every response is measured (the watcher keeps only
	// path-limited stretches of large enough responses).
	d.watch, d.measure = true, true
	d.floor = brFloorRate(in)
	est := cs.est.rate()
	small := p.smallRate(in, est, d.floor)
	switch {
	case small > 0:
		d.src, d.rate = SrcSmall, small
	case cs.responses == 0:
		d.src = SrcFirst
	case est == 0:
		d.src = SrcProbe // no estimate yet: unpaced
	case p.probeDue(cs, now) && mayMeasure(in) && !probeUseless(in, p.estimateRate(est, d.floor)):
		d.src, d.probe = SrcProbe, true
		d.rate = p.clamp(max(uint64(probeGain*float64(est)), d.floor))
		cs.sinceProbe, cs.lastProbe = 0, now
	default:
		d.src = SrcEstimate
		d.rate = p.estimateRate(est, d.floor)
		cs.sinceProbe++
	}
	return d
}

// specRate turns a specification into bytes/s for a phase: the rate, or
// burst × MSS / gap, whichever is lower when both are given.
func specRate(s *Spec, ph Phase, mss uint32) uint64 {
	kbps, burst, gapMs := s.For(ph)
	rate := uint64(kbps * 125)
	if burst > 0 && gapMs > 0 && mss > 0 {
		bg := uint64(float64(burst) * float64(mss) * 1000 / gapMs)
		if rate == 0 || bg < rate {
			rate = bg
		}
	}
	return rate
}

// serve paces one media response.
func (p *Pacer) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	cs, _ := r.Context().Value(stateKey{}).(*connState)
	if cs == nil {
		next.ServeHTTP(w, r)
		return
	}
	in := p.readInput(r, cs)
	now := time.Now()

	cs.mu.Lock()
	if cs.remote == "" {
		cs.remote = r.RemoteAddr
	}
	if err := cs.init(); err != nil {
		cs.mu.Unlock()
		next.ServeHTTP(w, r)
		return
	}
	if cs.watch != nil {
		cs.watch.stop()
		cs.watch = nil
	}
	ti, err := cs.info()
	if err != nil {
		cs.mu.Unlock()
		p.log.Debug("pacing: no TCP_INFO", "err", err)
		next.ServeHTTP(w, r)
		return
	}
	// The previous response on this connection is complete now: account
	// its retransmissions and delivery.
	loss := -1.0
	if pv := &cs.prev; pv.valid {
		dRetr, dSegs := ti.Total_retrans-pv.retrans, ti.Data_segs_out-pv.segsOut
		if dSegs > 0 {
			loss = float64(dRetr) / float64(dSegs)
		}
		if p.m != nil {
			p.retrans[b2i(pv.paced)].Observe(float64(dRetr))
		}
	}
	var d decision
	if r.ProtoMajor >= 2 && cs.active > 0 {
		d.src = SrcShared // one socket, several streams: leave its rate alone
		if cur := ti.Max_pacing_rate; cur != ^uint64(0) {
			d.rate = cur
		}
	} else {
		d = p.decide(cs, ti, &in, now)
		cur := ti.Max_pacing_rate
		if cur == ^uint64(0) {
			cur = 0
		}
		if d.rate != cur {
			// A probe raises the cap without restarting BBR (see
			// changePacingRate).
			if err := cs.changePacingRate(cur, d.rate, ti.Pacing_rate, !d.probe); err != nil {
				p.log.Warn("pacing: cannot set the pacing rate", "err", err, "remote", r.RemoteAddr)
				d.rate, d.src = cur, SrcNone
			}
		}
		// A small unsent queue matters while the response is paced or
		// watched (a new rate applies at once, the handler ends near the
		// real end); an unpaced one sends with the socket's whole buffer,
		// as any server does, in fewer sendfile calls and wake-ups.
		if want := p.cfg.NotsentLowat > 0 && (d.rate > 0 || d.watch); want != cs.lowatSet {
			cs.lowatSet = want
			v := uint64(0) // 0: the system's default (net.ipv4.tcp_notsent_lowat)
			if want {
				v = uint64(p.cfg.NotsentLowat)
			}
			if err := cs.setsockopt(unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, v); err != nil {
				p.log.Debug("pacing: TCP_NOTSENT_LOWAT", "err", err)
			}
		}
	}
	cc := cs.congestion()
	if d.rate > 0 {
		minTSO := p.minTSO.Load()
		d.burst = kernelBurst(d.rate, ti.Snd_mss, ti.Min_rtt, cc, minTSO, p.rttLog.Load())
		d.gapMs = float64(d.burst) * float64(ti.Snd_mss) * 1000 / float64(d.rate)
		d.cpuBurst = p.raised.Load() && cc != "bbr" && d.burst > 2 && uint32(d.burst) == minTSO
	}
	cs.responses++
	cs.active++
	cs.prev = snapshot{valid: true, retrans: ti.Total_retrans, segsOut: ti.Data_segs_out, paced: d.rate > 0}
	etp := p.etp(cs, ti)
	rttMs := (int64(ti.Rtt) + 500) / 1000
	var wt *watcher
	if d.watch {
		wt = startWatcher(p, cs, &in.spec, d, ti)
		cs.watch = wt
	}
	cs.mu.Unlock()

	h := w.Header()
	h["Cmsd-Dynamic"] = []string{p.cmsdDynamic(&d, etp, rttMs, loss)}
	if p.m != nil {
		p.responses[d.src].Inc()
		if d.rate > 0 && p.rates[d.src] != nil {
			p.rates[d.src].Observe(float64(d.rate) * 8)
		}
	}
	if p.log.Enabled(r.Context(), slog.LevelDebug) {
		p.logDecision(r, cs, &in, &d, ti.Snd_mss)
	}
	cw := httpx.NewCountingWriter(w)
	next.ServeHTTP(cw, r)
	if wt != nil {
		wt.handlerDone.Store(true)
	}
	cs.mu.Lock()
	cs.active--
	cs.mu.Unlock()
	if p.m != nil {
		p.bytes[b2i(d.rate > 0)].Add(float64(cw.Bytes))
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// etp is the throughput estimate for CMSD, kbit/s: the bottleneck estimate
// when there is one, else CTA-5006's informative 8·min(cwnd·mss, rwnd)/rtt.
func (p *Pacer) etp(cs *connState, ti *unix.TCPInfo) int64 {
	if e := cs.est.rate(); e > 0 {
		return int64(e * 8 / 1000)
	}
	if ti.Rtt == 0 {
		return -1
	}
	b := uint64(ti.Snd_cwnd) * uint64(ti.Snd_mss)
	if ti.Snd_wnd > 0 {
		b = min(b, uint64(ti.Snd_wnd))
	}
	return int64(b * 8000 / uint64(ti.Rtt))
}

// cmsdDynamic builds the CMSD-Dynamic value (CTA-5006: an sf-list with one
// item per hop, the hop's id with parameters). Custom keys carry the
// hyphenated reverse-DNS prefix com.sluice- the specification requires.
func (p *Pacer) cmsdDynamic(d *decision, etp, rttMs int64, loss float64) string {
	b := make([]byte, 0, 192)
	b = append(b, p.id...)
	if etp >= 0 {
		b = append(b, ";etp="...)
		b = sfv.AppendInt(b, etp)
	}
	b = append(b, ";rtt="...)
	b = sfv.AppendInt(b, rttMs)
	b = append(b, ";com.sluice-src="...)
	b = append(b, d.src.String()...)
	b = append(b, ";com.sluice-rate="...)
	b = sfv.AppendInt(b, int64(d.rate*8/1000))
	if d.rate > 0 {
		b = append(b, ";com.sluice-burst="...)
		b = sfv.AppendInt(b, int64(d.burst))
		b = append(b, ";com.sluice-gap="...)
		b = sfv.AppendDecimal(b, d.gapMs)
	}
	if d.perPhase {
		b = append(b, ";com.sluice-phase="...)
		b = append(b, d.phase.String()...)
	}
	if loss >= 0 {
		b = append(b, ";com.sluice-loss="...)
		b = sfv.AppendDecimal(b, loss)
	}
	if load, ok := p.CPULoad(); ok {
		b = append(b, ";com.sluice-cpu="...)
		b = sfv.AppendDecimal(b, load)
	}
	if p.hiCPU.Load() {
		b = append(b, ";com.sluice-hicpu"...)
	}
	if d.cpuBurst {
		b = append(b, ";com.sluice-cpuburst"...)
	}
	return string(b)
}

// logDecision writes the debug line of a media response, with the pacing
// rate read back from the socket.
func (p *Pacer) logDecision(r *http.Request, cs *connState, in *input, d *decision, mss uint32) {
	attrs := []slog.Attr{
		slog.String("path", r.URL.Path),
		slog.String("remote", r.RemoteAddr),
		slog.String("proto", r.Proto),
		slog.String("source", d.src.String()),
		slog.String("via", in.via.String()),
		slog.Int64("rate_kbps", int64(d.rate*8/1000)),
	}
	if sock, err := socketPacingRate(cs.rc); err == nil {
		attrs = append(attrs, slog.Uint64("socket_bps", sock))
	}
	if in.hasCMCD {
		if in.cmcd.RTP >= 0 {
			attrs = append(attrs, slog.Int64("rtp", in.cmcd.RTP))
		}
		if in.cmcd.BL >= 0 {
			attrs = append(attrs, slog.Int64("bl", in.cmcd.BL))
		}
		if in.cmcd.BR >= 0 {
			attrs = append(attrs, slog.Int64("br", in.cmcd.BR))
		}
	}
	if d.urgent != "" {
		attrs = append(attrs, slog.String("urgent", d.urgent))
	}
	if d.rate > 0 {
		attrs = append(attrs, slog.Int("burst", d.burst), slog.Int("mss", int(mss)))
	}
	if d.perPhase {
		attrs = append(attrs, slog.String("phase", d.phase.String()))
	}
	p.log.LogAttrs(r.Context(), slog.LevelDebug, "pacing", attrs...)
}
