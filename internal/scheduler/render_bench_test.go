package scheduler

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
)

// benchSessions opens n HLS sessions of a live point (60 fragments, three
// senders) and returns their IDs.
func benchSessions(b *testing.B, c *testCluster, n int) []string {
	b.Helper()
	re := regexp.MustCompile(`/s/live/~([0-9a-f]+)/steering\.json`)
	var ids []string
	for range n {
		rec := newRecorder()
		c.s.ServeHTTP(rec, mustReq(b, "/s/live/master.m3u8"))
		if rec.code != 200 {
			b.Fatal(rec.code, rec.body.String())
		}
		ids = append(ids, re.FindStringSubmatch(rec.body.String())[1])
	}
	return ids
}

// BenchmarkManifest is the scheduler's cost of one manifest reload of a
// live HLS session, the handler in process (no HTTP exchange), over 200
// sessions in turn: the master playlist, a media playlist as a sender
// asks for it (rel.m3u8) and one on the direct pathway (media.m3u8).
func BenchmarkManifest(b *testing.B) {
	for _, file := range []string{"master.m3u8", "video_1000/rel.m3u8", "video_1000/media.m3u8", "manifest.mpd"} {
		b.Run(file, func(b *testing.B) {
			c := newTestCluster(b, DefaultConfig(), 3, -1, testView("live", 60, false))
			ids := benchSessions(b, c, 200)
			reqs := make([]*http.Request, len(ids))
			for i, id := range ids {
				reqs[i] = mustReq(b, "/s/live/~"+id+"/"+file)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				rec := newRecorder()
				c.s.ServeHTTP(rec, reqs[i%len(reqs)])
				if rec.code != 200 {
					b.Fatal(rec.code, rec.body.String())
				}
			}
		})
	}
}

// BenchmarkReconcile is the cost of moving a live session's regions one
// block on (a sent report, then the reconciliation of the timeslot), over
// 200 sessions in turn.
func BenchmarkReconcile(b *testing.B) {
	c := newTestCluster(b, DefaultConfig(), 3, -1, testView("live", 60, false))
	ids := benchSessions(b, c, 200)
	s := c.s
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := ids[i%len(ids)]
		start := int64(40+(i/len(ids))%16) * 2000
		s.mu.Lock()
		s.onSent(cluster.SentReport{Session: id, Block: cluster.BlockID{Point: "live", Track: "video_1000", Start: start}, At: time.Now()})
		s.onSent(cluster.SentReport{Session: id, Block: cluster.BlockID{Point: "live", Track: "audio_128", Start: start}, At: time.Now()})
		s.reconcileDirty(s.now())
		s.mu.Unlock()
	}
	b.StopTimer()
	fmt.Fprint(nilWriter{}, s.Sessions())
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }
