// Command llviewers is the load generator of bench/ll-viewers.sh: N HLS
// players of one live media playlist, each on its own keep-alive
// connection, in low-latency mode (-mode ll: a blocking reload for the
// part after the newest listed, then that part, as LL-HLS players do —
// four requests a second with 0.5 s parts) or standard mode (-mode
// standard: the playlist every target duration and each new segment).
// It reads the server's CPU time from /proc/<pid>/stat before and after
// the measured window and prints one line: requests by kind, errors, the
// server's CPU per request and per player-second, and the part or
// segment wait p50/p99.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	u := flag.String("url", "", "media playlist URL")
	n := flag.Int("n", 1000, "players")
	mode := flag.String("mode", "ll", "ll or standard")
	warmup := flag.Duration("warmup", 4*time.Second, "time before the measured window")
	dur := flag.Duration("duration", 20*time.Second, "measured window")
	pid := flag.Int("pid", 0, "server process whose CPU is read")
	flag.Parse()
	if *u == "" || *pid == 0 {
		fmt.Fprintln(os.Stderr, "llviewers: -url and -pid are required")
		os.Exit(2)
	}
	base, err := url.Parse(*u)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*dur)
	defer cancel()
	var st stats
	var wg sync.WaitGroup
	start := time.Now()
	measureFrom := start.Add(*warmup)
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
			c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
			p := &player{c: c, base: base, st: &st, from: measureFrom}
			// Spread the starts over a second.
			time.Sleep(time.Duration(i) * time.Second / time.Duration(*n))
			if *mode == "ll" {
				p.lowLatency(ctx)
			} else {
				p.standard(ctx)
			}
			tr.CloseIdleConnections()
		}()
	}
	time.Sleep(time.Until(measureFrom))
	cpu0 := cpuTime(*pid)
	time.Sleep(time.Until(measureFrom.Add(*dur)))
	cpu1 := cpuTime(*pid)
	cancel()
	wg.Wait()
	cpu := (cpu1 - cpu0).Seconds()
	reqs := st.playlists.Load() + st.media.Load()
	waits := st.sortedWaits()
	q := func(p float64) float64 {
		if len(waits) == 0 {
			return 0
		}
		return waits[int(p*float64(len(waits)-1))]
	}
	fmt.Printf("mode=%s players=%d window=%.0fs playlists=%d media=%d errors=%d server_cpu=%.2fs cpu_per_request_us=%.0f cpu_per_player_second_us=%.0f media_wait_p50_ms=%.0f p99_ms=%.0f\n",
		*mode, *n, dur.Seconds(), st.playlists.Load(), st.media.Load(), st.errors.Load(), cpu,
		cpu*1e6/float64(max(reqs, 1)), cpu*1e6/(float64(*n)*dur.Seconds()), q(0.5), q(0.99))
}

type stats struct {
	playlists, media, errors atomic.Int64
	mu                       sync.Mutex
	waits                    []float64 // ms from request to the end of the body, media
}

func (s *stats) sortedWaits() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Float64s(s.waits)
	return s.waits
}

type player struct {
	c    *http.Client
	base *url.URL
	st   *stats
	from time.Time
}

// get fetches u; media requests count their wait.
func (p *player) get(ctx context.Context, u string, media bool) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	resp, err := p.c.Do(req)
	if err != nil {
		if ctx.Err() == nil && t0.After(p.from) {
			p.st.errors.Add(1)
		}
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", u, resp.Status)
	}
	if !t0.After(p.from) || ctx.Err() != nil {
		return body, err
	}
	if err != nil {
		p.st.errors.Add(1)
		return body, err
	}
	if media {
		p.st.media.Add(1)
		p.st.mu.Lock()
		p.st.waits = append(p.st.waits, float64(time.Since(t0).Microseconds())/1000)
		p.st.mu.Unlock()
	} else {
		p.st.playlists.Add(1)
	}
	return body, nil
}

func (p *player) resolve(ref string) string {
	r, err := p.base.Parse(ref)
	if err != nil {
		return ref
	}
	return r.String()
}

var (
	hintRE = regexp.MustCompile(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"`)
	seqRE  = regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	tdRE   = regexp.MustCompile(`#EXT-X-TARGETDURATION:(\d+)`)
)

// playlist is what a player needs of a media playlist: the next part
// (its msn and index) and the preload hint, or the newest segment.
type playlist struct {
	nextMSN, nextPart int64
	hint              string
	newest            string
	target            time.Duration
}

func parse(body []byte) playlist {
	var pl playlist
	seq := int64(0)
	if m := seqRE.FindSubmatch(body); m != nil {
		seq, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	segs, parts := int64(0), int64(0)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXTINF:"):
			segs++
			parts = 0
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			parts++
		case l != "" && !strings.HasPrefix(l, "#"):
			pl.newest = l
		}
	}
	pl.nextMSN, pl.nextPart = seq+segs, parts
	if m := hintRE.FindSubmatch(body); m != nil {
		pl.hint = string(m[1])
	}
	pl.target = 2 * time.Second
	if m := tdRE.FindSubmatch(body); m != nil {
		if s, err := strconv.Atoi(string(m[1])); err == nil && s > 0 {
			pl.target = time.Duration(s) * time.Second
		}
	}
	return pl
}

// lowLatency: the preload-hinted part, then a blocking reload for the part
// after it, again and again.
func (p *player) lowLatency(ctx context.Context) {
	body, err := p.get(ctx, p.base.String(), false)
	for ctx.Err() == nil {
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			body, err = p.get(ctx, p.base.String(), false)
			continue
		}
		pl := parse(body)
		if pl.hint == "" {
			time.Sleep(200 * time.Millisecond)
			body, err = p.get(ctx, p.base.String(), false)
			continue
		}
		if _, err = p.get(ctx, p.resolve(pl.hint), true); err != nil {
			continue
		}
		q := p.base.Query()
		q.Set("_HLS_msn", strconv.FormatInt(pl.nextMSN, 10))
		q.Set("_HLS_part", strconv.FormatInt(pl.nextPart, 10))
		u := *p.base
		u.RawQuery = q.Encode()
		body, err = p.get(ctx, u.String(), false)
	}
}

// standard: the playlist every target duration, and its newest segment
// when it is new.
func (p *player) standard(ctx context.Context) {
	last := ""
	for ctx.Err() == nil {
		t0 := time.Now()
		target := 2 * time.Second
		if body, err := p.get(ctx, p.base.String(), false); err == nil {
			pl := parse(body)
			target = pl.target
			if pl.newest != "" && pl.newest != last {
				if _, err := p.get(ctx, p.resolve(pl.newest), true); err == nil {
					last = pl.newest
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(t0.Add(target))):
		}
	}
}

// cpuTime is a process's user+system CPU time (/proc/<pid>/stat).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
