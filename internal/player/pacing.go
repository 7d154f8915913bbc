package player

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-media/sluice/internal/sfv"
)

// PacingMode says whether and how the pacing request engine sends a pacing
// specification with each fragment request (docs/pacing.md).
type PacingMode string

// Pacing modes.
const (
	// PacingOff sends no specification; the engine still reads the
	// server's metadata (CMSD) and reports it.
	PacingOff PacingMode = "off"
	// PacingCMCD sends the engine's rate as CMCD rtp (CMCD-Status, kbit/s).
	PacingCMCD PacingMode = "cmcd"
	// PacingSpec sends the full specification in the Sluice-Pacing header
	// (rate, burst, gap; "off" for urgent requests) and the rate as CMCD rtp.
	PacingSpec PacingMode = "spec"
	// PacingDashJS sends CMCD rtp computed as dash.js and Shaka do: five
	// times the fragment's bits divided by the seconds of buffer left (an
	// empty buffer counts as 0.5 s), on every fragment request.
	PacingDashJS PacingMode = "dashjs"
)

// ParsePacingMode checks a --pacing value.
func ParsePacingMode(s string) (PacingMode, error) {
	switch m := PacingMode(strings.ToLower(s)); m {
	case PacingOff, PacingCMCD, PacingSpec, PacingDashJS:
		return m, nil
	case "":
		return PacingOff, nil
	}
	return "", fmt.Errorf("pacing mode %q: want off, cmcd, spec or dashjs", s)
}

// Pacing header names and the CMSD custom keys the engine reads. The
// server writes them (internal/pacing); docs/pacing.md has the wire format.
const (
	PacingHeader      = "Sluice-Pacing"
	cmsdDynamicHeader = "CMSD-Dynamic"
	cmsdStaticHeader  = "CMSD-Static"
)

// Defaults of PacingConfig.
const (
	DefaultRateMultiplier = 1.5
	DefaultMSS            = 1448
	DefaultLossThreshold  = 0.005
	DefaultMaxPacingLog   = 5000
	// upSwitchHeadroom: below the top video rendition the rate is at least
	// this multiple of the top bitrate (within the capacity cap), so that a
	// download at that pace shows the throughput estimate there is room to
	// switch up (the ABR wants its bitrate within 0.8 of the estimate).
	upSwitchHeadroom   = 1.3
	DefaultCapFraction = 0.9
	// capacitySamples unpaced downloads make the capacity estimate (their
	// maximum); capacityMinBytes is the smallest download that counts.
	capacitySamples  = 4
	capacityMinBytes = 256 << 10
	// paceLimitedShare: a paced download that reached this share of its
	// rate was held back by the pace (request round trip, slow start after
	// idle and the unpaced first segments make up the rest); one below it
	// was held back by the path.
	paceLimitedShare = 0.7
)

// PacingConfig configures the pacing request engine. The zero value (mode
// "") is off.
type PacingConfig struct {
	Mode PacingMode
	// RateMultiplier is the pacing rate at a full buffer as a multiple of
	// the instantaneous encoding rate (default 1.5). LowBufferMultiplier
	// is the multiple at MinBuffer (default twice RateMultiplier): the
	// lower the buffer, the more headroom; linear in between.
	RateMultiplier, LowBufferMultiplier float64
	// FloorMultiplier bounds the loss back-off from below (default 1.1):
	// a rate below the encoding rate would drain the buffer.
	FloorMultiplier float64
	// MinBuffer: at or below this buffer level (and at startup or after a
	// stall) requests carry no specification and go unpaced, so that the
	// buffer refills as fast as the network allows. Default: Config.Startup.
	MinBuffer time.Duration
	// Burst is the device's capability as a maximum number of TCP segments
	// per burst; 0 leaves the burst to the server. The minimum gap between
	// bursts follows from it and the rate.
	Burst int
	// MSS is the segment size used to derive the gap (default 1448).
	MSS int
	// LossThreshold: a loss rate above it in the server's metadata makes
	// the engine back off (default 0.5 %).
	LossThreshold float64
	// CapFraction caps the rate at this fraction of the path's capacity as
	// the engine measured it (default 0.9): a rate above the bottleneck
	// paces nothing and only fills its queue. The capacity is the highest
	// throughput of the last few unpaced video downloads of 256 KB or more,
	// lowered by paced ones that fell well short of their rate. The cap
	// never goes below FloorMultiplier × the encoding rate.
	CapFraction float64
	// ProbeEvery: while the video rendition is below the top one, every
	// ProbeEvery-th fragment request goes unpaced, so that the throughput
	// estimate sees the network (a paced download only measures its pace).
	// 0 or negative: never (the default; the up-switch headroom below
	// usually makes probes unnecessary).
	ProbeEvery int
	// Log keeps one entry per fragment request in the report (for
	// benchmarks), at most MaxLog (default 5000).
	Log    bool
	MaxLog int
}

func (c PacingConfig) withDefaults(startup time.Duration) PacingConfig {
	if c.Mode == "" {
		c.Mode = PacingOff
	}
	if c.RateMultiplier <= 0 {
		c.RateMultiplier = DefaultRateMultiplier
	}
	if c.LowBufferMultiplier <= 0 {
		c.LowBufferMultiplier = 2 * c.RateMultiplier
	}
	c.LowBufferMultiplier = max(c.LowBufferMultiplier, c.RateMultiplier)
	if c.FloorMultiplier <= 0 {
		c.FloorMultiplier = 1.1
	}
	c.FloorMultiplier = min(c.FloorMultiplier, c.RateMultiplier)
	if c.MinBuffer <= 0 {
		c.MinBuffer = startup
	}
	if c.MSS <= 0 {
		c.MSS = DefaultMSS
	}
	if c.LossThreshold <= 0 {
		c.LossThreshold = DefaultLossThreshold
	}
	if c.MaxLog <= 0 {
		c.MaxLog = DefaultMaxPacingLog
	}
	if c.CapFraction <= 0 || c.CapFraction > 1 {
		c.CapFraction = DefaultCapFraction
	}
	return c
}

// PacingDecision is what the engine decided for one request.
type PacingDecision struct {
	// Media is true for fragment requests, the only ones the engine
	// considers; Urgent when the request goes unpaced on purpose (startup,
	// starved, buffer at or below MinBuffer); Probe when it goes unpaced to
	// measure the network (ProbeEvery).
	Media, Urgent, Probe bool
	// Paced is true when a specification was sent.
	Paced bool
	// Rate is the requested pacing rate, bits/s of TCP payload (0: none).
	Rate float64
	// EncodedRate is the instantaneous encoding rate the rate derives from,
	// bits/s; Multiplier the factor applied to it.
	EncodedRate, Multiplier float64
	// Capped is true when the rate was lowered to CapFraction × the
	// measured capacity.
	Capped bool
	// Burst (segments) and Gap (minimum time between bursts) as sent; 0
	// when not sent.
	Burst int
	Gap   time.Duration
}

// ServerMetadata is what a response's CMSD (CTA-5006) headers say. Numeric
// fields are -1 when absent.
type ServerMetadata struct {
	// Present is true when the response had a CMSD-Dynamic header.
	Present bool
	// ServerID is the value of the last CMSD-Dynamic item (the hop nearest
	// to the player).
	ServerID string
	// ETP is the server's throughput estimate, kbit/s; RTT in ms.
	ETP, RTT float64
	// AppliedRate is the pacing rate the server applied to this response,
	// kbit/s (0: unpaced); Burst the effective burst in segments, Gap the
	// effective time between bursts in ms.
	AppliedRate, Burst, Gap float64
	// Loss is the connection's retransmitted / sent segments over the
	// previous response on the same connection (0..1); CPU the server's
	// CPU load (0..1).
	Loss, CPU float64
	// Source says what set the applied rate ("spec", "rtp", "estimate",
	// "urgent", "first", "probe", "off", "none"...), as the server reports
	// it; "" when not reported.
	Source string
	// Duress is the CMSD du flag: the server is overloaded; HighCPU the
	// Sluice flag that its CPU load is above its threshold.
	Duress, HighCPU bool
}

// CMSD-Dynamic custom keys written by the Sluice origin (internal/pacing,
// docs/pacing.md).
const (
	cmsdRateKey    = "com.sluice-rate"  // applied pacing rate, kbit/s of payload; 0 unpaced
	cmsdBurstKey   = "com.sluice-burst" // effective segments per burst
	cmsdGapKey     = "com.sluice-gap"   // effective gap between bursts, ms
	cmsdLossKey    = "com.sluice-loss"  // retransmitted / sent segments, previous response
	cmsdCPUKey     = "com.sluice-cpu"   // server CPU load 0..1
	cmsdHighCPUKey = "com.sluice-hicpu" // flag: CPU above its threshold
	cmsdSourceKey  = "com.sluice-src"   // token: what decided the pacing
)

// ParseCMSD reads the CMSD-Dynamic (an RFC 8941 List, one item per hop;
// the last one is used) and CMSD-Static (a Dictionary) response headers.
// Malformed headers yield what parsed before the error.
func ParseCMSD(h http.Header) (ServerMetadata, error) {
	md := ServerMetadata{ETP: -1, RTT: -1, AppliedRate: -1, Burst: -1, Gap: -1, Loss: -1, CPU: -1}
	var firstErr error
	params := map[string]sfv.Item{}
	for _, v := range h.Values(cmsdStaticHeader) {
		err := sfv.ParseDictionary(v, func(key string, it sfv.Item) error {
			params[key] = it
			return nil
		})
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("CMSD-Static: %w", err)
		}
	}
	var last sfv.Item
	for _, v := range h.Values(cmsdDynamicHeader) {
		err := sfv.ParseList(v, func(it sfv.Item) error {
			last, md.Present = it, true
			return nil
		})
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("CMSD-Dynamic: %w", err)
		}
	}
	if md.Present {
		md.ServerID = last.Str
		// The parameters were validated with the list: no error here.
		_ = sfv.ParseParams(last.Params, func(key string, it sfv.Item) error {
			params[key] = it // the dynamic values win
			return nil
		})
	}
	num := func(key string) float64 {
		if f, ok := params[key].Number(); ok {
			return f
		}
		return -1
	}
	md.ETP = num("etp")
	md.RTT = num("rtt")
	md.AppliedRate = num(cmsdRateKey)
	md.Burst = num(cmsdBurstKey)
	md.Gap = num(cmsdGapKey)
	md.Loss = num(cmsdLossKey)
	md.CPU = num(cmsdCPUKey)
	if it, ok := params[cmsdSourceKey]; ok && (it.Kind == sfv.String || it.Kind == sfv.Token) {
		md.Source = it.Str
	}
	if it, ok := params["du"]; ok && it.Kind == sfv.Boolean {
		md.Duress = it.Bool
	}
	if it, ok := params[cmsdHighCPUKey]; ok && it.Kind == sfv.Boolean {
		md.HighCPU = it.Bool
	}
	return md, firstErr
}

// pacer is the pacing request engine of one session: it decides the
// specification of each fragment request from the player's state and the
// server's last metadata, and keeps the numbers for the report. Safe for
// concurrent use (video and audio fetch at once).
type pacer struct {
	cfg   PacingConfig
	start time.Time

	mu sync.Mutex
	// encoded is the last instantaneous encoding rate seen per rendition.
	encoded map[string]float64
	// sinceProbe counts paced requests per kind since the last probe;
	// lastPaced tells whether the previous fragment request of a kind was
	// paced.
	sinceProbe map[Kind]int
	lastPaced  map[Kind]bool
	// capSamples are the last unpaced throughput samples (bits/s); capacity
	// is their maximum, 0 while unknown.
	capSamples  []float64
	capacity    float64
	capacityMax float64 // the maximum of capSamples: where capacity recovers to
	// lossFactor scales the multiplier down after lossy responses and
	// recovers slowly on clean ones.
	lossFactor float64
	rep        PacingReport
	requested  []float64 // kbit/s of paced requests
	applied    []float64 // kbit/s applied by the server, paced responses
	losses     []float64
	rtts       []float64
	etps       []float64
	lossSum    float64
}

func newPacer(cfg PacingConfig, startup time.Duration) *pacer {
	cfg = cfg.withDefaults(startup)
	return &pacer{
		cfg: cfg, start: time.Now(), encoded: map[string]float64{}, sinceProbe: map[Kind]int{}, lastPaced: map[Kind]bool{}, lossFactor: 1,
		rep: PacingReport{
			Mode: cfg.Mode, RateMultiplier: cfg.RateMultiplier, LowBufferMultiplier: cfg.LowBufferMultiplier,
			MinBufferMS: cfg.MinBuffer.Milliseconds(), Burst: cfg.Burst,
		},
	}
}

func isMedia(o ObjectType) bool {
	return o == ObjectVideo || o == ObjectAudio || o == ObjectMuxed
}

func renditionKey(info RequestInfo) string {
	if info.Rendition != "" {
		return string(info.Kind) + "/" + info.Rendition
	}
	return string(info.Kind) + "/" + strconv.FormatInt(info.Bitrate, 10)
}

// decide makes the decision for a request.
func (p *pacer) decide(info RequestInfo) PacingDecision {
	if !isMedia(info.Object) {
		return PacingDecision{}
	}
	d := PacingDecision{Media: true}
	p.mu.Lock()
	defer p.mu.Unlock()
	d.EncodedRate = p.encodingRate(info)
	urgent := info.Startup || info.Starved || info.Buffer <= p.cfg.MinBuffer
	switch p.cfg.Mode {
	case PacingOff:
		d.Urgent = urgent // for the report: the request would go unpaced
		return d
	case PacingDashJS:
		// dash.js / Shaka: rtp = 5 × bits of the object ÷ seconds of buffer.
		bits := float64(info.Bitrate) * info.Duration.Seconds()
		d.Rate = 5 * bits / max(info.Buffer.Seconds(), 0.5)
		d.Multiplier = d.Rate / max(d.EncodedRate, 1)
		d.Paced = d.Rate > 0
		d.Urgent = urgent && !d.Paced
		return d
	}
	if urgent {
		d.Urgent = true
		return d
	}
	if d.EncodedRate <= 0 {
		return d // nothing to derive a rate from
	}
	if p.cfg.ProbeEvery > 0 && info.Kind == KindVideo && info.TopBitrate > 0 && info.Bitrate < info.TopBitrate {
		if p.sinceProbe[info.Kind]++; p.sinceProbe[info.Kind] >= p.cfg.ProbeEvery {
			p.sinceProbe[info.Kind] = 0
			d.Probe = true
			return d
		}
	}
	d.Multiplier = p.multiplier(info.Buffer, info.BufferTarget)
	d.Rate = d.EncodedRate * d.Multiplier
	if info.Kind == KindVideo && info.TopBitrate > info.Bitrate {
		d.Rate = max(d.Rate, upSwitchHeadroom*float64(info.TopBitrate))
		d.Multiplier = d.Rate / d.EncodedRate
	}
	if p.capacity > 0 && d.Rate > p.cfg.CapFraction*p.capacity {
		d.Rate = max(p.cfg.CapFraction*p.capacity, p.cfg.FloorMultiplier*d.EncodedRate)
		d.Multiplier = d.Rate / d.EncodedRate
		d.Capped = true
	}
	d.Paced = true
	if p.cfg.Burst > 0 {
		d.Burst = p.cfg.Burst
		d.Gap = time.Duration(float64(d.Burst*p.cfg.MSS*8) / d.Rate * float64(time.Second))
	}
	return d
}

// encodingRate returns the instantaneous encoding rate of the fragment:
// its size (known from a byte range) over its duration, else the last
// fragment of the same rendition, else the rendition's declared bitrate.
// Call with p.mu held.
func (p *pacer) encodingRate(info RequestInfo) float64 {
	if info.Size > 0 && info.Duration > 0 {
		return float64(info.Size) * 8 / info.Duration.Seconds()
	}
	if r := p.encoded[renditionKey(info)]; r > 0 {
		return r
	}
	return float64(info.Bitrate)
}

// multiplier interpolates between LowBufferMultiplier at MinBuffer and
// RateMultiplier at the buffer target, then applies the loss back-off,
// never going below FloorMultiplier. Call with p.mu held.
func (p *pacer) multiplier(buffer, target time.Duration) float64 {
	full := 1.0
	if span := target - p.cfg.MinBuffer; span > 0 && buffer < target {
		full = min(max(float64(buffer-p.cfg.MinBuffer)/float64(span), 0), 1)
	}
	m := p.cfg.LowBufferMultiplier + (p.cfg.RateMultiplier-p.cfg.LowBufferMultiplier)*full
	return max(m*p.lossFactor, p.cfg.FloorMultiplier)
}

// apply adds the decision to the request: CMCD rtp (merged into
// CMCD-Status) and, in spec mode, the Sluice-Pacing header.
func (p *pacer) apply(req *http.Request, d PacingDecision) {
	switch p.cfg.Mode {
	case PacingCMCD, PacingDashJS:
		if d.Paced {
			setCMCDKey(req.Header, "CMCD-Status", "rtp", rtpValue(d.Rate))
		}
	case PacingSpec:
		if d.Paced {
			setCMCDKey(req.Header, "CMCD-Status", "rtp", rtpValue(d.Rate))
			req.Header.Set(PacingHeader, specValue(d))
		} else if d.Urgent || d.Probe {
			req.Header.Set(PacingHeader, "off")
		}
	}
}

// rtpValue renders a rate in bits/s as CMCD rtp: kbit/s rounded to the
// nearest 100 (CTA-5004), at least 100.
func rtpValue(bps float64) string {
	return strconv.FormatInt(max(100, int64(math.Round(bps/100_000))*100), 10)
}

// specValue renders a decision as a Sluice-Pacing dictionary: rate in
// kbit/s of TCP payload, burst in segments, gap in milliseconds.
func specValue(d PacingDecision) string {
	s := "rate=" + strconv.FormatInt(int64(math.Round(d.Rate/1000)), 10)
	if d.Burst > 0 {
		s += ",burst=" + strconv.Itoa(d.Burst)
		gap := math.Round(d.Gap.Seconds()*1e6) / 1000 // ms, 3 decimals
		s += ",gap=" + strconv.FormatFloat(max(gap, 0.001), 'f', -1, 64)
	}
	return s
}

// setCMCDKey sets one key of a CMCD header, keeping the other keys and
// the alphabetical order (CTA-5004).
func setCMCDKey(h http.Header, name, key, value string) {
	kv := map[string]string{}
	for _, part := range strings.Split(h.Get(name), ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		kv[k] = v
	}
	kv[key] = value
	h.Set(name, cmcdJoin(kv))
}

// observe takes a response in: the fragment's encoding rate for the next
// decision about its rendition, the server's metadata (loss → back-off),
// and the counters of the report. When the download was limited by a pace
// (its throughput close to the engine's rate, or to the rate the server
// reported applying) it returns that pace, bits/s, else 0: such a
// throughput says the network carries at least the pace, nothing more.
func (p *pacer) observe(resp *http.Response, info RequestInfo, d PacingDecision, t0 time.Time, n int64, elapsed time.Duration) (pace float64) {
	if !d.Media {
		return 0
	}
	var paceLimited bool
	md, err := ParseCMSD(resp.Header)
	p.mu.Lock()
	defer p.mu.Unlock()
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if ok && n > 0 && info.Duration > 0 {
		p.encoded[renditionKey(info)] = float64(n) * 8 / info.Duration.Seconds()
	}
	r := &p.rep
	r.Requests++
	switch {
	case d.Paced:
		r.Paced++
		if d.Capped {
			r.Capped++
		}
		p.requested = appendBounded(p.requested, d.Rate/1000)
	case d.Urgent:
		r.Urgent++
	case d.Probe:
		r.Probes++
	}
	if err != nil {
		r.CMSDErrors++
	}
	if md.Present {
		r.CMSDResponses++
		if md.AppliedRate > 0 {
			r.ServerPaced++
			p.applied = appendBounded(p.applied, md.AppliedRate)
		}
		if md.RTT >= 0 {
			p.rtts = appendBounded(p.rtts, md.RTT)
		}
		if md.ETP >= 0 {
			p.etps = appendBounded(p.etps, md.ETP)
		}
		if md.Duress {
			r.Duress++
		}
		if md.Loss >= 0 {
			r.LossReports++
			p.lossSum += md.Loss
			p.losses = appendBounded(p.losses, md.Loss)
			r.LossMax = max(r.LossMax, md.Loss)
			p.feedLoss(md.Loss, d, p.lastPaced[info.Kind])
		}
	}
	p.lastPaced[info.Kind] = d.Paced
	if ok && elapsed > 0 && n > 0 {
		// Held back by a pace: the engine's own, or one the server applied
		// on its own estimate and reported in CMSD.
		tput := float64(n) * 8 / elapsed.Seconds()
		switch {
		case d.Paced:
			pace = d.Rate
		case md.AppliedRate > 0:
			pace = md.AppliedRate * 1000
		}
		paceLimited = pace > 0 && tput >= paceLimitedShare*pace
		if paceLimited {
			r.PaceLimited++
		} else {
			pace = 0
		}
	}
	if ok && info.Kind == KindVideo && n >= capacityMinBytes && elapsed > 0 {
		tput := float64(n) * 8 / elapsed.Seconds()
		switch {
		case !d.Paced && md.AppliedRate <= 0: // unpaced on the wire
			p.capSamples = append(p.capSamples, tput)
			if len(p.capSamples) > capacitySamples {
				p.capSamples = p.capSamples[1:]
			}
			p.capacity = 0
			for _, x := range p.capSamples {
				p.capacity = max(p.capacity, x)
			}
			p.capacityMax = p.capacity
		case d.Paced && !paceLimited && tput < p.capacity:
			// Held back by the path, not by the pace: the path got slower
			// (or the machine was busy), for now.
			p.capacity = tput
		case d.Paced && paceLimited && p.capacity < p.capacityMax:
			// The path carried the pace: recover 10 % a fragment towards
			// the last unpaced measurement.
			p.capacity = min(p.capacity*1.1, p.capacityMax)
		}
	}
	r.CapacityKbps = math.Round(p.capacity / 1000)
	if p.cfg.Log && len(r.Log) < p.cfg.MaxLog {
		e := PacingLogEntry{
			StartMS: t0.UnixMilli(), Kind: info.Kind, Bitrate: info.Bitrate, Bytes: n,
			DownloadMS: float64(elapsed.Microseconds()) / 1000, BufferMS: info.Buffer.Milliseconds(),
			Urgent: d.Urgent, Probe: d.Probe, Paced: d.Paced, RateKbps: math.Round(d.Rate / 1000),
			EncodedKbps: math.Round(d.EncodedRate / 1000), Status: resp.StatusCode,
			AppliedKbps: md.AppliedRate, Loss: md.Loss, RTTMS: md.RTT, ETPKbps: md.ETP, Source: md.Source,
		}
		r.Log = append(r.Log, e)
	}
	return pace
}

// feedLoss adjusts the back-off from one loss report. The server reports
// the previous response on the connection (each kind has its own), so only
// a report on a paced request that followed a paced request moves it: a
// lossy unpaced startup or probe burst says nothing about the engine's
// rate. Call with p.mu held.
func (p *pacer) feedLoss(loss float64, d PacingDecision, prevPaced bool) {
	if !d.Paced || !prevPaced || p.cfg.Mode == PacingDashJS {
		return
	}
	switch {
	case loss > p.cfg.LossThreshold:
		p.lossFactor = max(p.lossFactor*0.85, 0.5)
		p.rep.Backoffs++
	case loss <= p.cfg.LossThreshold/4:
		p.lossFactor = min(p.lossFactor+0.05, 1)
	}
}

func appendBounded(s []float64, v float64) []float64 {
	if len(s) >= 100_000 {
		return s
	}
	return append(s, v)
}

// report fills and returns the pacing part of the session report.
func (p *pacer) report() *PacingReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rep
	r.Log = append([]PacingLogEntry(nil), p.rep.Log...)
	r.RequestedKbps = summarize(p.requested)
	r.AppliedKbps = summarize(p.applied)
	r.ServerRTTMS = summarize(p.rtts)
	r.ETPKbps = summarize(p.etps)
	if r.LossReports > 0 {
		r.LossMean = p.lossSum / float64(r.LossReports)
	}
	r.LossFactor = p.lossFactor
	return &r
}

// PacingReport is the pacing part of Report (`sluice play --json`, key
// "pacing"): what the engine asked for and what the server said.
type PacingReport struct {
	Mode                PacingMode `json:"mode"`
	RateMultiplier      float64    `json:"rate_multiplier"`
	LowBufferMultiplier float64    `json:"low_buffer_multiplier"`
	MinBufferMS         int64      `json:"min_buffer_ms"`
	Burst               int        `json:"burst"`
	// Requests counts fragment responses; Paced those sent with a
	// specification, Urgent those sent without on purpose (startup,
	// starved, low buffer; in mode off: those that would have been).
	Requests int `json:"requests"`
	Paced    int `json:"paced"`
	Urgent   int `json:"urgent"`
	// Probes counts requests sent unpaced to measure the network.
	Probes int `json:"probes"`
	// Capped counts rates lowered to the cap; CapacityKbps is the path
	// capacity the engine measured last (0: unknown).
	Capped       int     `json:"capped"`
	CapacityKbps float64 `json:"capacity_kbps"`
	// RequestedKbps summarises the rates asked for (kbit/s of payload).
	RequestedKbps RateStats `json:"requested_kbps"`
	// CMSDResponses counts fragment responses with CMSD-Dynamic; ServerPaced
	// those reporting an applied rate, summarised in AppliedKbps.
	CMSDResponses int       `json:"cmsd_responses"`
	CMSDErrors    int       `json:"cmsd_errors"`
	ServerPaced   int       `json:"server_paced"`
	AppliedKbps   RateStats `json:"applied_kbps"`
	ETPKbps       RateStats `json:"etp_kbps"`
	ServerRTTMS   RateStats `json:"server_rtt_ms"`
	// LossReports counts responses reporting a loss rate; LossMax and
	// LossMean are over them (0..1). Backoffs counts the reports above the
	// threshold that lowered the rate; LossFactor is the back-off at the end.
	LossReports int     `json:"loss_reports"`
	LossMax     float64 `json:"loss_max"`
	LossMean    float64 `json:"loss_mean"`
	Backoffs    int     `json:"backoffs"`
	LossFactor  float64 `json:"loss_factor"`
	Duress      int     `json:"duress"`
	// PaceLimited counts downloads whose throughput was set by a pace (the
	// engine's, or the one the server reported applying); they are left
	// out of the throughput estimate (a paced connection never measures
	// more than its pace).
	PaceLimited int `json:"pace_limited"`
	// Log has one entry per fragment request when asked for (--pacing-log).
	Log []PacingLogEntry `json:"log,omitempty"`
}

// RateStats summarises a series: count, minimum, median, mean, maximum.
type RateStats struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

func summarize(v []float64) RateStats {
	if len(v) == 0 {
		return RateStats{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	round := func(x float64) float64 { return math.Round(x*1000) / 1000 }
	return RateStats{N: len(s), Min: round(s[0]), P50: round(s[(len(s)-1)/2]), Mean: round(sum / float64(len(s))), Max: round(s[len(s)-1])}
}

// PacingLogEntry is one fragment request in the pacing log. Numbers from
// the server are -1 when it did not report them.
type PacingLogEntry struct {
	StartMS     int64   `json:"t"` // request start, Unix ms
	Kind        Kind    `json:"kind"`
	Bitrate     int64   `json:"br"`
	Bytes       int64   `json:"bytes"`
	DownloadMS  float64 `json:"ms"`
	BufferMS    int64   `json:"bl"`
	Urgent      bool    `json:"urgent,omitempty"`
	Probe       bool    `json:"probe,omitempty"`
	Paced       bool    `json:"paced,omitempty"`
	RateKbps    float64 `json:"rate,omitempty"`
	EncodedKbps float64 `json:"enc"`
	Status      int     `json:"status"`
	AppliedKbps float64 `json:"applied"`
	Loss        float64 `json:"loss"`
	RTTMS       float64 `json:"rtt"`
	ETPKbps     float64 `json:"etp"`
	Source      string  `json:"src,omitempty"`
}
