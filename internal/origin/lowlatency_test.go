package origin_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// llEnv is a live point whose video track has a fragment in progress:
// copies of its last stored fragment moved to follow it stand in for
// chunks (the handlers do not look inside).
type llEnv struct {
	*env
	point *store.Point
	track store.TrackView
	last  store.FragRef
	parts []media.Part
}

func newLLEnv(t *testing.T) *llEnv {
	e := newEnv(t, t.TempDir())
	e.push(true)
	p, err := e.srv.Store.Point("ch")
	if err != nil {
		t.Fatal(err)
	}
	l := &llEnv{env: e, point: p}
	for _, tr := range p.View(0).Tracks {
		if tr.Info.Kind == "video" {
			l.track = tr
		}
	}
	l.last = l.track.Frags[len(l.track.Frags)-1]
	return l
}

// addPart makes the next part of the fragment in progress.
func (l *llEnv) addPart(t *testing.T) media.Part {
	t.Helper()
	data, ref, err := l.point.ReadFragment(l.track.ID, l.last.Start)
	if err != nil {
		t.Fatal(err)
	}
	fi := media.FragInfo{TrackID: l.track.Info.TrackID, Start: ref.Start, Duration: ref.Duration, Key: true, HasTfdt: true}
	start := l.last.End() + int64(len(l.parts))*int64(ref.Duration)
	moved, mfi, err := media.Shift(data, fi, start-ref.Start)
	if err != nil {
		t.Fatal(err)
	}
	mfi.Key = len(l.parts) == 0
	part := media.Part{FragStart: l.last.End(), Index: len(l.parts), Info: mfi, Data: moved}
	if ok, err := l.point.AddPart(l.track.ID, "s", part); !ok || err != nil {
		t.Fatalf("AddPart: %v %v", ok, err)
	}
	l.parts = append(l.parts, part)
	return part
}

func (l *llEnv) playlist() string { return "/ch.isml/tracks/" + l.track.ID + "/media.m3u8" }

func TestLowLatencyRequests(t *testing.T) {
	l := newLLEnv(t)
	p0 := l.addPart(t)
	resp, body := l.get(l.playlist())
	if !bytes.Contains(body, []byte("#EXT-X-PART-INF")) || resp.Header.Get("Cache-Control") != "public, max-age=0" {
		t.Fatalf("low-latency playlist (%s):\n%s", resp.Header.Get("Cache-Control"), body)
	}
	msn := l.track.First + int64(len(l.track.Frags)) // the fragment in progress

	// A blocking reload for part 1 answers once it exists.
	type answer struct {
		code int
		body []byte
		at   time.Time
	}
	got := make(chan answer, 1)
	go func() {
		resp, body := l.get(fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=1", l.playlist(), msn))
		got <- answer{resp.StatusCode, body, time.Now()}
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("blocking reload answered %d before its part existed:\n%s", a.code, a.body)
	default:
	}
	added := time.Now()
	p1 := l.addPart(t)
	a := <-got
	if a.code != http.StatusOK || a.at.Before(added) || !bytes.Contains(a.body, []byte(manifest.PartName(p1.Info.Start))) {
		t.Errorf("blocking reload: %d, answered %v after the part\n%s", a.code, a.at.Sub(added), a.body)
	}
	if resp, _ := l.get(fmt.Sprintf("%s?_HLS_msn=%d", l.playlist(), msn+5)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a reload five segments ahead: %d", resp.StatusCode)
	}
	if resp, _ := l.get(l.playlist() + "?_HLS_msn=x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed _HLS_msn: %d", resp.StatusCode)
	}

	// Parts: kept ones from memory, the next one when it arrives, others 404.
	dir := "/ch.isml/tracks/" + l.track.ID + "/"
	if resp, body := l.get(dir + manifest.PartName(p0.Info.Start)); resp.StatusCode != 200 || !bytes.Equal(body, p0.Data) {
		t.Errorf("part 0: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := l.get(dir + manifest.PartName(l.last.Start)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a part that is not kept: %d", resp.StatusCode)
	}
	next := p1.Info.Start + int64(p1.Info.Duration)
	go func() {
		resp, body := l.get(dir + manifest.PartName(next))
		got <- answer{resp.StatusCode, body, time.Now()}
	}()
	time.Sleep(200 * time.Millisecond)
	added = time.Now()
	p2 := l.addPart(t)
	if a := <-got; a.code != 200 || !bytes.Equal(a.body, p2.Data) || a.at.Before(added) {
		t.Errorf("hinted part: %d, %d bytes", a.code, len(a.body))
	}

	// The fragment in progress streams as it grows and ends when it is
	// stored.
	seg := fmt.Sprintf("%s%d.m4s", dir, l.last.End())
	streamed := make(chan answer, 1)
	go func() {
		resp, body := l.get(seg)
		streamed <- answer{resp.StatusCode, body, time.Now()}
	}()
	time.Sleep(200 * time.Millisecond)
	p3 := l.addPart(t)
	time.Sleep(100 * time.Millisecond)
	var chunks []*media.Fragment
	for _, p := range l.parts {
		chunks = append(chunks, &media.Fragment{Info: p.Info, Data: p.Data})
	}
	merged, err := media.Merge(chunks, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := time.Now()
	if _, err := l.point.AddFragment(l.track.ID, merged); err != nil {
		t.Fatal(err)
	}
	a = <-streamed
	want := bytes.Join([][]byte{p0.Data, p1.Data, p2.Data, p3.Data}, nil)
	if a.code != 200 || !bytes.Equal(a.body, want) || a.at.Before(stored) {
		t.Errorf("growing fragment: %d, %d bytes (want the %d of its four parts), ended %v after it was stored",
			a.code, len(a.body), len(want), a.at.Sub(stored))
	}
	// Stored, the same URL is the merged fragment.
	if resp, body := l.get(seg); resp.StatusCode != 200 || !bytes.Equal(body, merged.Data) || strings.Contains(resp.Header.Get("Transfer-Encoding"), "chunked") {
		t.Errorf("stored fragment: %d, %d bytes", resp.StatusCode, len(body))
	}
}
