package ingest_test

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testkit"
)

// TestPushEmsgBounds: event messages beyond the bounds before a fragment
// are 413, a malformed one 400, both with a reason and nothing stored; a
// push within the bounds stores its events.
func TestPushEmsgBounds(t *testing.T) {
	e := newEnv(t)
	emsg := func(ts uint32, n int) []byte {
		var b bytes.Buffer
		(&mp4.EmsgBox{Version: 1, TimeScale: ts, PresentationTime: 500, ID: 1, SchemeIDURI: media.SchemeSCTE35,
			MessageData: make([]byte, n)}).Encode(&b)
		return b.Bytes()
	}
	body := func(boxes ...[]byte) []byte {
		out := append([]byte(nil), testkit.CMAFInit()...)
		for _, b := range boxes {
			out = append(out, b...)
		}
		return append(out, testkit.CMAFFragment(1, 0, 2000, 200)...)
	}
	many := make([][]byte, media.MaxEventsPerFragment+1)
	for i := range many {
		many[i] = emsg(1000, 1)
	}
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"too many", body(many...), 413, "emsg"},
		{"too large", body(emsg(1000, media.MaxEventData+1)), 413, "emsg"},
		{"timescale 0", body(emsg(0, 1)), 400, "timescale 0"},
	} {
		code, msg := e.post("/live.isml/Streams(ev)", c.body, nil)
		if code != c.status || !strings.Contains(msg, c.reason) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, msg, c.status, c.reason)
		}
	}
	if p, err := e.srv.Store.Point("live"); err == nil && fragCount(p.View(0)) != 0 {
		t.Fatalf("refused pushes stored %d fragments", fragCount(p.View(0)))
	}
	if code, msg := e.post("/live.isml/Streams(ev)", body(emsg(1000, 3), emsg(90000, 3)), nil); code != 200 {
		t.Fatalf("push within the bounds: %d %s", code, msg)
	}
	v := e.view("live")
	if len(v.Events) != 2 {
		t.Fatalf("%d events stored, want 2: %+v", len(v.Events), v.Events)
	}
	// A pull of the (ended) stream carries them: re-ingested, the same
	// events.
	if code, msg := e.post("/live.isml/Streams(ev)", []byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'}, nil); code != 200 {
		t.Fatalf("end: %d %s", code, msg)
	}
	resp, err := http.Get(e.ts.URL + "/live.isml/Streams(ev)")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pull: %v %v", err, resp)
	}
	pulled, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e2 := newEnv(t)
	if code, msg := e2.post("/live.isml/Streams(ev)", pulled, nil); code != 200 {
		t.Fatalf("re-ingest of the pull: %d %s", code, msg)
	}
	if got := e2.view("live").Events; !reflect.DeepEqual(got, v.Events) {
		t.Fatalf("pulled events %+v, want %+v", got, v.Events)
	}
}
