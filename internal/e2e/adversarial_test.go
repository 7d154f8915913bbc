package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/hostile"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// advEnv is what the adversarial cases attack: an ingest (points live and
// crowd) and an origin pulling live from it, while a good encoder pushes
// live/Streams(good) in real time.
type advEnv struct {
	ingest, origin *roleNode
	good           *proc
	header         []byte // the good stream's header as stored (ftyp, manifest box, moov)
	frag           []byte // one stored fragment of it (moof+mdat)
	// exclusive serialises the cases that use ingest memory or push slots
	// of point live, so that each gets the status it would get alone.
	exclusive sync.Mutex
}

// Flags of the attacked processes: the production defaults where the case
// needs them (64 MiB boxes), short timeouts so that the suite stays short.
// Every case pushes from 127.0.0.1, so the per-client push limit is off
// (--push-rate 0): it would answer 429 to the cases that share that address
// rather than let each meet the bound it tests (TestPushLimitPerClient
// tests it).
var (
	advIngestFlags = []string{"--point", "live", "--point", "crowd", "--max-pushes", "12", "--push-rate", "0",
		"--ingest-memory", "128MiB", "--ingest-idle", "6s", "--ingest-rate-window", "2s", "--write-timeout", "3s"}
	advOriginFlags = []string{"--write-timeout", "3s"}
)

// advRSSBound is the most resident memory the ingest may reach over the
// whole suite (VmHWM): the Go soft memory limit Sluice sets, 128 MiB of
// box buffers (--ingest-memory) plus 256 MiB of headroom, and 32 MiB for
// what the limit does not count (the mapped executable). The 8 pushes that
// declare 64 MiB boxes alone took a build without a budget past 500 MB.
const advRSSBound = 416 << 20

func (e *advEnv) push(n *roleNode, point, stream string) string {
	return n.base + "/" + point + ".isml/Streams(" + stream + ")"
}

func addrOf(n *roleNode) string { return strings.TrimPrefix(n.base, "http://") }

// advCase is one row of the adversarial table. Other kinds of attack
// (forged tokens, a fake cluster member, absurd times) are added as rows.
type advCase struct {
	name string
	// exclusive: the case uses ingest memory or push slots of point live.
	exclusive bool
	// run attacks and returns the answer of every request it made.
	run func(t *testing.T, e *advEnv) []hostile.Answer
	// want, when set, judges every answer.
	want func(a hostile.Answer) error
	// check, when set, judges the answers together, and what the case
	// left behind.
	check func(t *testing.T, e *advEnv, got []hostile.Answer)
}

// status wants every answer to be code with a reason containing reason.
func status(code int, reason string) func(hostile.Answer) error {
	return func(a hostile.Answer) error {
		if a.Status != code || !strings.Contains(a.Reason, reason) {
			return fmt.Errorf("want %d %q", code, reason)
		}
		if code == http.StatusServiceUnavailable && a.RetryAfter == "" {
			return fmt.Errorf("503 without Retry-After")
		}
		return nil
	}
}

// concurrently runs n pushes at once and returns their answers.
func concurrently(n int, push func(i int) hostile.Answer) []hostile.Answer {
	out := make([]hostile.Answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = push(i)
		}()
	}
	wg.Wait()
	return out
}

// count returns how many answers have the status.
func count(got []hostile.Answer, code int) int {
	n := 0
	for _, a := range got {
		if a.Status == code {
			n++
		}
	}
	return n
}

// within bounds a case's requests.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func advCases() []advCase {
	return []advCase{
		{
			name: "truncated box",
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				body := hostile.Bytes(e.header, e.frag[:len(e.frag)/2])
				return []hostile.Answer{hostile.Push(within(t, 20*time.Second), e.push(e.ingest, "live", "trunc"), body)}
			},
			want: status(400, "stream ended inside a box"),
		},
		{
			name: "fragment of an undeclared track",
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				f := bytes.Clone(e.frag)
				i := bytes.Index(f, []byte("tfhd"))
				f[i+8], f[i+9], f[i+10], f[i+11] = 0, 0, 0, 99 // track_ID 99
				return []hostile.Answer{hostile.Push(within(t, 20*time.Second), e.push(e.ingest, "live", "bogus"), hostile.Bytes(e.header, f))}
			},
			want: status(400, "does not declare"),
		},
		{
			name: "time already stored, other bytes",
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				f := bytes.Clone(e.frag)
				f[len(f)-1] ^= 0xff
				return []hostile.Answer{hostile.Push(within(t, 20*time.Second), e.push(e.ingest, "live", "forged"), hostile.Bytes(e.header, f))}
			},
			// The first copy is kept: the final checks compare every
			// stored fragment with the origin's copy.
			want: status(200, ""),
		},
		{
			name: "300 junk stream ids",
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				body := hostile.Bytes(e.header, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64))
				ctx := within(t, 60*time.Second)
				var out []hostile.Answer
				for i := range 300 {
					out = append(out, hostile.Push(ctx, e.push(e.ingest, "live", fmt.Sprintf("junk-%d", i)), body))
				}
				return out
			},
			want: status(400, ""),
			check: func(t *testing.T, e *advEnv, _ []hostile.Answer) {
				// Not listed, not pulled: the StreamManifest stays one
				// stream long and the origin pulls one stream.
				sm, _ := streamManifest(t, e.ingest.base, "live")
				_, body := get(t, e.ingest.base+"/live.isml/StreamManifest")
				if len(sm.Streams) != 1 || len(body) > 4<<10 {
					t.Errorf("StreamManifest lists %d streams in %d bytes", len(sm.Streams), len(body))
				}
				time.Sleep(2 * time.Second) // two polls of the origin
				if n, _ := scrapeMetric(e.origin.base, "sluice_pull_streams_connected"); n > 1 {
					t.Errorf("origin pulls %v streams", n)
				}
			},
		},
		{
			name: "trickle into a declared 64 MiB box",
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				body := hostile.Then(hostile.Bytes(e.header, hostile.BoxHeader(64<<20, "uuid")), hostile.Every(200*time.Millisecond, []byte{0}))
				return []hostile.Answer{hostile.Push(within(t, 30*time.Second), e.push(e.ingest, "live", "trickle"), body)}
			},
			want: status(408, "receive rate"),
		},
		{
			name: "padding only, slowly",
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				body := hostile.Then(hostile.Bytes(e.header), hostile.Every(500*time.Millisecond, hostile.Box("free", 1)))
				return []hostile.Answer{hostile.Push(within(t, 30*time.Second), e.push(e.ingest, "live", "padding"), body)}
			},
			want: status(408, "no header, fragment or end"),
		},
		{
			name:      "free-box flood",
			exclusive: true,
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				body := hostile.Then(hostile.Bytes(e.header), hostile.Repeat(hostile.Box("free", 1<<20), 200))
				return []hostile.Answer{hostile.Push(within(t, 30*time.Second), e.push(e.ingest, "live", "flood"), body)}
			},
			want: status(400, "without a header, a fragment or the end"),
		},
		{
			name:      "8 pushes declaring 64 MiB boxes",
			exclusive: true,
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				ctx := within(t, 30*time.Second)
				return concurrently(8, func(i int) hostile.Answer {
					body := hostile.Then(hostile.Bytes(e.header, hostile.BoxHeader(64<<20, "mdat"), make([]byte, 4<<20)), hostile.Hold)
					return hostile.Push(ctx, e.push(e.ingest, "live", fmt.Sprintf("huge-%d", i)), body)
				})
			},
			want: status(408, "receive rate"),
		},
		{
			name:      "8 pushes sending 60 MiB of 64 MiB boxes",
			exclusive: true,
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				ctx := within(t, 30*time.Second)
				return concurrently(8, func(i int) hostile.Answer {
					body := hostile.Then(hostile.Bytes(e.header, hostile.BoxHeader(64<<20, "uuid")), hostile.Then(hostile.Repeat(make([]byte, 1<<20), 60), hostile.Hold))
					return hostile.Push(ctx, e.push(e.ingest, "live", fmt.Sprintf("mem-%d", i)), body)
				})
			},
			check: func(t *testing.T, e *advEnv, got []hostile.Answer) {
				// 480 MiB without a budget. The 128 MiB budget holds
				// two of them: the others cut the one holding the most
				// (503), the two left are too slow once they hold (408).
				if n := count(got, 503); n < 6 || n+count(got, 408) != len(got) {
					t.Errorf("%d answers 503 and %d 408 of %d, want >= 6 503 and the rest 408", n, count(got, 408), len(got))
				}
				for _, a := range got {
					if a.Status == 503 && (a.RetryAfter == "" || !strings.Contains(a.Reason, "memory budget")) {
						t.Errorf("503 %q Retry-After %q", a.Reason, a.RetryAfter)
					}
				}
			},
		},
		{
			name: "13 concurrent pushes to a point allowing 12",
			run: func(t *testing.T, e *advEnv) []hostile.Answer {
				ctx := within(t, 30*time.Second)
				return concurrently(13, func(i int) hostile.Answer {
					return hostile.Push(ctx, e.push(e.ingest, "crowd", fmt.Sprintf("c%d", i)), hostile.Then(hostile.Bytes(e.header), hostile.Hold))
				})
			},
			check: func(t *testing.T, e *advEnv, got []hostile.Answer) {
				// One is refused at once; the others hold their slot
				// until they are cut for making no progress.
				if count(got, 503) != 1 || count(got, 408) != 12 {
					t.Errorf("%d answers 503 and %d 408, want 1 and 12", count(got, 503), count(got, 408))
				}
				for _, a := range got {
					if a.Status == 503 && (a.RetryAfter == "" || !strings.Contains(a.Reason, "max_pushes")) {
						t.Errorf("503 %q Retry-After %q", a.Reason, a.RetryAfter)
					}
				}
			},
		},
		{name: "20 pulls never read (ingest)", check: slowReaders((*advEnv).ingestNode)},
		{name: "20 pulls never read (origin)", check: slowReaders((*advEnv).originNode)},
		{name: "slowloris (ingest)", check: slowloris((*advEnv).ingestNode)},
		{name: "slowloris (origin)", check: slowloris((*advEnv).originNode)},
	}
}

func (e *advEnv) ingestNode() *roleNode { return e.ingest }
func (e *advEnv) originNode() *roleNode { return e.origin }

// slowReaders opens 20 pulls of the good stream that never read: the node
// must close them once their writes make no progress for --write-timeout.
func slowReaders(node func(*advEnv) *roleNode) func(t *testing.T, e *advEnv, _ []hostile.Answer) {
	return func(t *testing.T, e *advEnv, _ []hostile.Answer) {
		n := node(e)
		base, _ := scrapeMetric(n.base, "sluice_pull_connections")
		c, err := hostile.SlowReaders(addrOf(n), "/live.isml/Streams(good)", 20)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitUntil(t, 10*time.Second, "20 pulls open", func() (bool, string) {
			v, _ := scrapeMetric(n.base, "sluice_pull_connections")
			return v >= base+20, fmt.Sprintf("%v open", v)
		})
		opened := time.Now()
		waitUntil(t, 40*time.Second, "pulls that read nothing closed", func() (bool, string) {
			v, _ := scrapeMetric(n.base, "sluice_pull_connections")
			return v <= base, fmt.Sprintf("%v open, %v before", v, base)
		})
		t.Logf("%s closed 20 pulls that read nothing %v after they opened", n.name, time.Since(opened).Round(100*time.Millisecond))
	}
}

// slowloris holds 20 connections that never finish their request header:
// the node must close them all (its header timeout is 10 s).
func slowloris(node func(*advEnv) *roleNode) func(t *testing.T, e *advEnv, _ []hostile.Answer) {
	return func(t *testing.T, e *advEnv, _ []hostile.Answer) {
		n := node(e)
		c, err := hostile.Slowloris(addrOf(n), 20, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		waitUntil(t, 20*time.Second, "slowloris connections closed", func() (bool, string) {
			return c.Closed() == c.Len(), fmt.Sprintf("%d of %d closed", c.Closed(), c.Len())
		})
		t.Logf("%s closed %d slowloris connections after %v", n.name, c.Len(), time.Since(start).Round(100*time.Millisecond))
	}
}

// TestAdversarial runs the table of hostile inputs against a real ingest
// and origin while a good encoder pushes: every input gets its status,
// neither process crashes or grows past advRSSBound, the origin stays
// ready, and every fragment of the good push is stored, listed and pulled
// byte for byte.
func TestAdversarial(t *testing.T) {
	longTest(t)
	root := repoRoot(t)
	dir := t.TempDir()
	bin := buildSluice(t, root, dir)
	e := &advEnv{}
	e.ingest = startRole(t, bin, dir, "ingest", "ingest", advIngestFlags...)
	e.origin = startRole(t, bin, dir, "origin", "origin", append([]string{"--point", "live", "--ingest", e.ingest.base}, advOriginFlags...)...)
	dumpLogs(t, e.ingest, e.origin)
	e.good = startPush(t, bin, "good", []string{"--loop"}, e.push(e.ingest, "live", "good"))
	waitUntil(t, 30*time.Second, "good push stored and pulled", func() (bool, string) {
		sm, _ := streamManifest(t, e.origin.base, "live")
		return sm.fragments() >= 4, fmt.Sprintf("origin holds %d fragments", sm.fragments())
	})
	waitReady(t, 15*time.Second, e.ingest, e.origin)
	e.header, e.frag = storedStream(t, e.ingest.base+"/live.isml/Streams(good)")
	before, _ := streamManifest(t, e.ingest.base, "live")
	mem0, _ := hostile.Memory(e.ingest.p.cmd.Process.Pid)

	// The origin's readiness, every 500 ms while the cases run.
	var ready, probes atomic.Int64
	stopProbe := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		c := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stopProbe:
				return
			case <-time.After(500 * time.Millisecond):
			}
			resp, err := c.Get(e.origin.base + "/readyz")
			probes.Add(1)
			if err == nil {
				if resp.StatusCode == 200 {
					ready.Add(1)
				}
				resp.Body.Close()
			}
		}
	}()

	start := time.Now()
	t.Run("cases", func(t *testing.T) {
		for _, c := range advCases() {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				if c.exclusive {
					e.exclusive.Lock()
					defer e.exclusive.Unlock()
				}
				var got []hostile.Answer
				if c.run != nil {
					got = c.run(t, e)
				}
				for i, a := range got {
					if c.want == nil {
						break
					}
					if err := c.want(a); err != nil {
						t.Errorf("request %d: %v, got %v", i, err, a)
					}
				}
				if c.check != nil {
					c.check(t, e, got)
				}
				if len(got) > 0 {
					t.Logf("%d requests, first: %v", len(got), got[0])
				}
			})
		}
	})
	close(stopProbe)
	<-probed
	t.Logf("cases took %v", time.Since(start).Round(100*time.Millisecond))

	// No crash, bounded memory.
	for _, n := range []*roleNode{e.ingest, e.origin} {
		if n.p.exited() {
			t.Fatalf("%s exited: %v", n.name, n.p.err)
		}
		if code, _ := get(t, n.base+"/healthz"); code != 200 {
			t.Errorf("%s /healthz %d", n.name, code)
		}
		m, err := hostile.Memory(n.p.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: resident %d MiB now, peak %d MiB (bound %d MiB); before the cases %d MiB", n.name, m.RSS>>20, m.HWM>>20, advRSSBound>>20, mem0.RSS>>20)
		if m.HWM > advRSSBound {
			t.Errorf("%s peaked at %d MiB resident, bound %d MiB", n.name, m.HWM>>20, advRSSBound>>20)
		}
	}
	if r, p := ready.Load(), probes.Load(); p == 0 || r*10 < p*9 {
		t.Errorf("origin ready for %d of %d probes", r, p)
	} else {
		t.Logf("origin ready for %d of %d probes", r, p)
	}

	// The good push kept being stored while the cases ran.
	after, _ := streamManifest(t, e.ingest.base, "live")
	if gained := after.newest() - before.newest(); gained < time.Since(start).Seconds()/2 {
		t.Errorf("the good push advanced %.1f s of media in %v", gained, time.Since(start))
	}
	// End it; nothing lost or hidden: the ingest and the origin hold the
	// same fragments, without gap, each listed in the StreamManifest.
	e.good.cmd.Process.Signal(syscall.SIGINT)
	from, to := waitPush(t, e.good, 20*time.Second)
	waitEnded(t, 20*time.Second, "live", e.ingest, e.origin)
	for _, n := range []*roleNode{e.ingest, e.origin} {
		sm, _ := streamManifest(t, n.base, "live")
		checkContiguous(t, n.name, timelines(t, n.data, "live"), sm.timescales(), from, to)
		if files := len(fragFiles(t, n.data, "live")); files != sm.fragments() {
			t.Errorf("%s: %d fragment files, %d listed", n.name, files, sm.fragments())
		}
		if len(sm.Streams) != 1 {
			t.Errorf("%s lists %d streams", n.name, len(sm.Streams))
		}
	}
	if same, why := sameFiles(fragFiles(t, e.ingest.data, "live"), fragFiles(t, e.origin.data, "live")); !same {
		t.Errorf("origin and ingest differ: %s", why)
	}
}

// storedStream pulls a stream and returns its header and first fragment.
func storedStream(t *testing.T, url string) (header, frag []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The header and at least one fragment are stored: read until the
	// second mdat ends, then stop (the pull follows the live stream).
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if bs, ok := completeBoxes(buf); ok {
			var hdr []byte
			for i, b := range bs {
				if b.Type == "moof" && i+1 < len(bs) {
					return hdr, testmedia.Join(bs[i : i+2])
				}
				hdr = append(hdr, b.Raw...)
			}
		}
		if err != nil {
			t.Fatalf("pull %s: %v", url, err)
		}
	}
}

// completeBoxes splits the complete top-level boxes at the start of b;
// ok once a moof and its mdat are among them.
func completeBoxes(b []byte) ([]media.Box, bool) {
	var out []media.Box
	for off := 0; off+8 <= len(b); {
		n := int(uint32(b[off])<<24 | uint32(b[off+1])<<16 | uint32(b[off+2])<<8 | uint32(b[off+3]))
		if n < 8 || off+n > len(b) {
			break
		}
		out = append(out, media.Box{Type: string(b[off+4 : off+8]), Raw: b[off : off+n]})
		off += n
	}
	for i := range out {
		if out[i].Type == "moof" && i+1 < len(out) && out[i+1].Type == "mdat" {
			return out, true
		}
	}
	return out, false
}
