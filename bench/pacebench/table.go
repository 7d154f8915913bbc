package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The acceptance targets of pacing (docs/pacing.md), relative to the unpaced run.
const (
	targetRetx  = 0.10 // retransmissions per MB at most 10 % of unpaced
	targetDelay = 0.20 // competing flow's added delay at most 20 % of unpaced
	targetChunk = 1.30 // chunk download time at most 1.3× unpaced
	// minRetx: below this many retransmitted segments per MB (≈0.1 % of
	// the segments) unpaced has no loss worth reducing: the retransmission
	// target is not judged.
	minRetx = 1.0
)

// runTable is `pacebench table -dir DIR`: reads the runs bench/pacing.sh
// left in DIR (one directory per run, named <buffer>_<mode>_r<rep>) and
// prints a Markdown table of each mode against the unpaced run with the same
// buffer, then a verdict per target.
func runTable(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "results directory of bench/pacing.sh")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("table: want -dir")
	}
	ents, err := os.ReadDir(*dir)
	if err != nil {
		return err
	}
	// Stalls of the delay line (bench/pacing.sh has it write them at the
	// end): the competing flow's probes that crossed one are left out.
	stalls, err := readStalls(filepath.Join(*dir, "delay-stalls.txt"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	byKey := map[[2]string][]result{}
	var buffers, modes []string
	for _, e := range ents {
		parts := strings.Split(e.Name(), "_")
		if !e.IsDir() || len(parts) != 3 || !strings.HasPrefix(parts[2], "r") {
			continue
		}
		r, err := loadRun(filepath.Join(*dir, e.Name()), stalls)
		if err != nil {
			fmt.Fprintf(stderr, "table: %s: %v\n", e.Name(), err)
			continue
		}
		k := [2]string{parts[0], parts[1]}
		if len(byKey[k]) == 0 {
			buffers, modes = addOnce(buffers, parts[0]), addOnce(modes, parts[1])
		}
		byKey[k] = append(byKey[k], r)
	}
	if len(byKey) == 0 {
		return fmt.Errorf("table: no runs in %s", *dir)
	}
	order := map[string]int{"unpaced": 0, "client": 1, "cmcd": 2, "server": 3, "dashjs": 4}
	sort.Slice(modes, func(i, j int) bool { return order[modes[i]] < order[modes[j]] })
	sort.Slice(buffers, func(i, j int) bool { return buffers[i] > buffers[j] }) // shallow before deep

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	fmt.Fprintln(w, "| buffer | mode | runs | stalls | top chunks (Mbit/s) | chunk ms p50 | × unpaced | retx seg/MB | retx % | × unpaced | competing +delay ms p50 / p99 | × unpaced p50 / p99 | whole session: retx seg/MB, +delay p99 ms | probes in delay-line stalls (p99 with them) | tbf drops | paced rate p50 Mbit/s | video Mbit/s |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var verdicts []string
	for _, b := range buffers {
		base, haveBase := median(byKey[[2]string{b, "unpaced"}])
		for _, m := range modes {
			runs := byKey[[2]string{b, m}]
			if len(runs) == 0 {
				continue
			}
			r, _ := median(runs)
			ratio := func(x, y float64) string {
				if !haveBase || m == "unpaced" {
					return "1"
				}
				if y <= 0 {
					if x <= 0 {
						return "– (0 / 0)"
					}
					return "∞"
				}
				return fmt.Sprintf("%.2f", x/y)
			}
			chunkRatio := ratio(r.chunkMS, base.chunkMS)
			if haveBase && m != "unpaced" && r.chunkBr != base.chunkBr {
				chunkRatio = "other rendition"
			}
			fmt.Fprintf(w, "| %s | %s | %d | %d (%d ms) | %d (%.1f) | %.0f | %s | %.2f | %.3f | %s | %.1f / %.1f | %s / %s | %.2f, %.1f | %d (%.1f) | %d | %s | %.2f |\n",
				b, m, len(runs), r.stalls, r.stallMS, r.chunks, float64(r.chunkBr)/1e6, r.chunkMS, chunkRatio,
				r.retxPerMB, 100*r.retxFrac, ratio(r.retxPerMB, base.retxPerMB),
				r.delayP50, r.delayP99, ratio(r.delayP50, base.delayP50), ratio(r.delayP99, base.delayP99),
				r.retxRunPerMB, r.delayRunP99, r.inStall, r.delayP99All, r.drops, rateCell(r.pacedP50), r.videoMbps)
			if haveBase && m != "unpaced" {
				verdicts = append(verdicts, verdict(b, m, r, base))
			}
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Steady state = after the last urgent (startup) video download, which every mode sends unpaced by design.\n")
	fmt.Fprintf(w, "Competing-flow delays leave out the steady-state probes whose round trip crossed a stall of the delay line (%d stalls of over %v recorded: the VM did not run it in time); the column before tbf drops counts them and gives the p99 with them.\n",
		len(stalls), stallMin)
	fmt.Fprintf(w, "Targets, steady state: retransmissions/MB ≤ %.0f %% of unpaced, competing added delay (p50 and p99) ≤ %.0f %% of unpaced; no stall, chunk time ≤ %.1f× unpaced.\n",
		100*targetRetx, 100*targetDelay, targetChunk)
	for _, v := range verdicts {
		fmt.Fprintln(w, v)
	}
	return nil
}

func addOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func rateCell(kbps float64) string {
	if kbps <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", kbps/1000)
}

// verdict checks one mode against the targets.
func verdict(buffer, mode string, r, base result) string {
	var fails, notes []string
	switch {
	case base.retxPerMB < minRetx:
		notes = append(notes, fmt.Sprintf("retx: unpaced lost almost nothing (%.2f seg/MB), nothing to reduce", base.retxPerMB))
	case r.retxPerMB > targetRetx*base.retxPerMB:
		fails = append(fails, fmt.Sprintf("retx %.0f %% of unpaced", 100*r.retxPerMB/base.retxPerMB))
	}
	for _, d := range []struct {
		name    string
		x, base float64
	}{{"p50", r.delayP50, base.delayP50}, {"p99", r.delayP99, base.delayP99}} {
		switch {
		case d.base < 1:
			notes = append(notes, fmt.Sprintf("delay %s: unpaced added under 1 ms", d.name))
		case d.x > targetDelay*d.base:
			fails = append(fails, fmt.Sprintf("delay %s %.0f %% of unpaced", d.name, 100*d.x/d.base))
		}
	}
	if r.stalls > 0 {
		fails = append(fails, fmt.Sprintf("%d stalls", r.stalls))
	}
	switch {
	case r.chunkBr < base.chunkBr:
		fails = append(fails, fmt.Sprintf("top rendition %.1f Mbit/s, unpaced reached %.1f", float64(r.chunkBr)/1e6, float64(base.chunkBr)/1e6))
	case r.chunkBr > base.chunkBr:
		notes = append(notes, "chunk time: a higher rendition than unpaced")
	case base.chunkMS > 0 && r.chunkMS > targetChunk*base.chunkMS:
		fails = append(fails, fmt.Sprintf("chunk time %.2f× unpaced", r.chunkMS/base.chunkMS))
	}
	s := fmt.Sprintf("- %s / %s: ", buffer, mode)
	if len(fails) == 0 {
		s += "PASS"
	} else {
		s += "FAIL (" + strings.Join(fails, "; ") + ")"
	}
	if len(notes) > 0 {
		s += " — " + strings.Join(notes, "; ")
	}
	return s
}

// result is the measurement of one run.
type result struct {
	stalls             int
	stallMS            int64
	chunks             int     // steady-state video chunks of the highest rendition played
	chunkBr            int64   // that rendition's bitrate
	chunkMS            float64 // their median download time
	videoMbps          float64 // average video bitrate played
	retxPerMB          float64 // steady state: retransmitted segments per MB of media
	retxFrac           float64 // steady state: retransmitted / sent segments
	retxRunPerMB       float64 // the same over the whole session, startup included
	drops              int64   // tbf drops
	delayP50, delayP99 float64 // competing flow's added delay while a steady-state chunk was in flight, ms
	delayRunP99        float64 // p99 while any video chunk was in flight, startup included
	inStall            int     // steady-state probes left out: their round trip crossed a delay-line stall
	delayP99All        float64 // steady-state p99 with them
	pacedP50           float64 // median pacing rate applied (CMSD) or requested, kbit/s
}

// median takes the per-field median of several repetitions (with an even
// number, the mean of the middle two).
func median(rs []result) (result, bool) {
	if len(rs) == 0 {
		return result{}, false
	}
	if len(rs) == 1 {
		return rs[0], true
	}
	f := func(get func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		sort.Float64s(v)
		return (v[(len(v)-1)/2] + v[len(v)/2]) / 2 // the middle one, or the mean of the two
	}
	out := result{
		chunkMS:      f(func(r result) float64 { return r.chunkMS }),
		videoMbps:    f(func(r result) float64 { return r.videoMbps }),
		retxPerMB:    f(func(r result) float64 { return r.retxPerMB }),
		retxFrac:     f(func(r result) float64 { return r.retxFrac }),
		retxRunPerMB: f(func(r result) float64 { return r.retxRunPerMB }),
		delayRunP99:  f(func(r result) float64 { return r.delayRunP99 }),
		delayP50:     f(func(r result) float64 { return r.delayP50 }),
		delayP99:     f(func(r result) float64 { return r.delayP99 }),
		delayP99All:  f(func(r result) float64 { return r.delayP99All }),
		inStall:      int(f(func(r result) float64 { return float64(r.inStall) })),
		pacedP50:     f(func(r result) float64 { return r.pacedP50 }),
		drops:        int64(f(func(r result) float64 { return float64(r.drops) })),
		chunks:       int(f(func(r result) float64 { return float64(r.chunks) })),
		chunkBr:      int64(f(func(r result) float64 { return float64(r.chunkBr) })),
	}
	for _, r := range rs { // stalls: the total, so that any stall shows
		out.stalls += r.stalls
		out.stallMS += r.stallMS
	}
	return out, true
}

// playReport is the part of `sluice play --json` the table reads.
type playReport struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error"`
	Stalls     int    `json:"stalls"`
	StallMS    int64  `json:"stall_ms"`
	Bytes      int64  `json:"bytes"`
	AvgBitrate int64  `json:"avg_bitrate"`
	Pacing     *struct {
		Log []struct {
			T       int64   `json:"t"`
			Kind    string  `json:"kind"`
			Br      int64   `json:"br"`
			Bytes   int64   `json:"bytes"`
			MS      float64 `json:"ms"`
			Urgent  bool    `json:"urgent"`
			Paced   bool    `json:"paced"`
			Rate    float64 `json:"rate"`
			Applied float64 `json:"applied"`
			Status  int     `json:"status"`
			Probe   bool    `json:"probe"`
		} `json:"log"`
	} `json:"pacing"`
}

// loadRun reads one run directory: play.json, ping.txt, base.txt,
// nstat.before, nstat.after, tc.txt. stalls are the delay line's stalls
// (Unix ns intervals, sorted by start).
func loadRun(dir string, stalls [][2]int64) (result, error) {
	var r result
	b, err := os.ReadFile(filepath.Join(dir, "play.json"))
	if err != nil {
		return r, err
	}
	var rep playReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return r, fmt.Errorf("play.json: %w", err)
	}
	if rep.Pacing == nil {
		return r, errors.New("play.json has no pacing log (run sluice play with --pacing and --pacing-log)")
	}
	r.stalls, r.stallMS = rep.Stalls, rep.StallMS
	r.videoMbps = float64(rep.AvgBitrate) / 1e6
	if !rep.OK {
		r.stalls = max(r.stalls, 1) // a failed session counts as a stall
	}

	// Chunk download times: steady state (not urgent) video fragments.
	// Chunk times are compared on the highest rendition the run played
	// (the same one in every mode when the ABR works).
	var rates []float64
	msByBr := map[int64][]float64{}
	// Steady state starts when the last urgent (startup, unpaced by
	// design in every mode) video download has ended.
	var busy, steadyBusy [][2]int64 // video downloads in flight, Unix ns
	var steadyStart int64
	for _, e := range rep.Pacing.Log {
		if e.Kind == "video" && e.Urgent {
			steadyStart = max(steadyStart, e.T*1e6+int64(e.MS*1e6))
		}
	}
	var steadyBytes int64
	for _, e := range rep.Pacing.Log {
		start := e.T * 1e6
		if start >= steadyStart && e.Status == 200 {
			steadyBytes += e.Bytes
		}
		if e.Kind != "video" || e.Status != 200 {
			continue
		}
		busy = append(busy, [2]int64{start, start + int64(e.MS*1e6)})
		if e.Urgent || start < steadyStart {
			continue
		}
		steadyBusy = append(steadyBusy, [2]int64{start, start + int64(e.MS*1e6)})
		msByBr[e.Br] = append(msByBr[e.Br], e.MS)
		r.chunkBr = max(r.chunkBr, e.Br)
		switch {
		case e.Applied > 0:
			rates = append(rates, e.Applied)
		case e.Paced:
			rates = append(rates, e.Rate)
		}
	}
	r.chunks = len(msByBr[r.chunkBr])
	r.chunkMS = pct(msByBr[r.chunkBr], 50)
	r.pacedP50 = pct(rates, 50)

	// Retransmissions, from the server namespace's counters.
	before, err1 := readNstat(filepath.Join(dir, "nstat.before"))
	after, err2 := readNstat(filepath.Join(dir, "nstat.after"))
	if err := errors.Join(err1, err2); err != nil {
		return r, err
	}
	retx := after["TcpRetransSegs"] - before["TcpRetransSegs"]
	if rep.Bytes > 0 {
		r.retxRunPerMB = float64(retx) / (float64(rep.Bytes) / 1e6)
	}
	series, err := readSeries(filepath.Join(dir, "nstat.series"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return r, err
	}
	if series == nil { // an older run without the sampler: whole session
		r.retxPerMB = r.retxRunPerMB
	}
	// The first sample at or after the steady state's start, and the last.
	var first, last []int64
	for _, x := range series {
		if x[0] >= steadyStart && first == nil {
			first = x
		}
		last = x
	}
	if first != nil && last[0] > first[0] && steadyBytes > 0 {
		r.retxPerMB = float64(last[1]-first[1]) / (float64(steadyBytes) / 1e6)
		if out := last[2] - first[2]; out > 0 {
			r.retxFrac = float64(last[1]-first[1]) / float64(out)
		}
	}
	if tc, err := os.ReadFile(filepath.Join(dir, "tc.txt")); err == nil {
		if m := regexp.MustCompile(`dropped (\d+)`).FindSubmatch(tc); m != nil {
			r.drops, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
	}

	// The competing flow: added delay over the idle RTT, for probes sent
	// while a video chunk was in flight.
	base, err := readPing(filepath.Join(dir, "base.txt"))
	if err != nil {
		return r, err
	}
	if len(base) == 0 {
		return r, errors.New("base.txt: no probes")
	}
	baseRTT := pct(rttsOf(base), 50)
	probes, err := readPing(filepath.Join(dir, "ping.txt"))
	if err != nil {
		return r, err
	}
	var extra, extraAll, extraRun []float64
	for _, p := range probes {
		d := math.Max(0, float64(p[1])/1e6-baseRTT)
		stalled := crosses(stalls, p[0], p[0]+p[1])
		if inside(busy, p[0]) && !stalled {
			extraRun = append(extraRun, d)
		}
		if inside(steadyBusy, p[0]) {
			extraAll = append(extraAll, d)
			if stalled {
				r.inStall++
			} else {
				extra = append(extra, d)
			}
		}
	}
	r.delayP50, r.delayP99 = pct(extra, 50), pct(extra, 99)
	r.delayP99All = pct(extraAll, 99)
	r.delayRunP99 = pct(extraRun, 99)
	return r, nil
}

// crosses reports whether [a, b] overlaps one of the intervals (sorted by
// start).
func crosses(iv [][2]int64, a, b int64) bool {
	i := sort.Search(len(iv), func(i int) bool { return iv[i][0] > b }) // the first that starts after b
	for j := i - 1; j >= 0; j-- {
		if iv[j][1] >= a {
			return true
		}
		if iv[j][0] < a-int64(time.Second) { // stalls are far shorter than a second
			break
		}
	}
	return false
}

// readStalls reads the delay line's "start-ns end-ns" lines, sorted by
// start.
func readStalls(path string) ([][2]int64, error) {
	out, err := readPairs(path, func(start, end int64) bool { return end >= start })
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out, err
}

// readPairs reads the lines of two integers of path that keep accepts.
func readPairs(path string, keep func(a, b int64) bool) ([][2]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][2]int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		a, b, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		x, err1 := strconv.ParseInt(a, 10, 64)
		y, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil && keep(x, y) {
			out = append(out, [2]int64{x, y})
		}
	}
	return out, sc.Err()
}

func rttsOf(ps [][2]int64) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = float64(p[1]) / 1e6
	}
	return out
}

func inside(iv [][2]int64, t int64) bool {
	for _, x := range iv {
		if t >= x[0] && t <= x[1] {
			return true
		}
	}
	return false
}

// readPing reads "send-ns rtt-ns" lines.
func readPing(path string) ([][2]int64, error) {
	return readPairs(path, func(int64, int64) bool { return true })
}

// readSeries reads the sampler's "<Unix ns> <retransmitted> <sent>" lines.
func readSeries(path string) ([][]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		var v []int64
		for _, x := range f {
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil {
				break
			}
			v = append(v, n)
		}
		if len(v) == 3 {
			out = append(out, v)
		}
	}
	return out, nil
}

// readNstat reads `nstat -a` output: "Name value rate" lines.
func readNstat(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m, nil
}

// pct is the nearest-rank percentile; 0 for no values.
func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}
