package archive

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/scte35"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit"
)

// TestCuesAPI: POST /api/points/<pp>/cues needs the admin token, refuses
// bad bodies with a reason, and stores a splice_insert that decodes to
// what was asked, at the asked time or the live edge.
func TestCuesAPI(t *testing.T) {
	st, ref := liveStore(t)
	ts := httptest.NewServer(API(st, "s3cret", slog.New(slog.DiscardHandler)))
	defer ts.Close()
	url := ts.URL + "/api/points/ch/cues"
	at := ref.Seconds(ref.Frags[2].Start)
	for _, tc := range []struct {
		name, token, body string
		want              int
		reason            string
	}{
		{"no token", "", `{"type":"out","id":1}`, 401, "token"},
		{"wrong token", "nope", `{"type":"out","id":1}`, 401, "token"},
		{"not json", "s3cret", `out`, 400, "body"},
		{"unknown field", "s3cret", `{"type":"out","id":1,"colour":2}`, 400, "colour"},
		{"no type", "s3cret", `{"id":1}`, 400, "type"},
		{"bad type", "s3cret", `{"type":"sideways","id":1}`, 400, "type"},
		{"no id", "s3cret", `{"type":"out"}`, 400, "id"},
		{"negative duration", "s3cret", `{"type":"out","id":1,"duration":-3}`, 400, "duration"},
		{"long duration", "s3cret", `{"type":"out","id":1,"duration":1e9}`, 400, "duration"},
		{"in with duration", "s3cret", `{"type":"in","id":1,"duration":3}`, 400, "duration"},
		{"bad time", "s3cret", `{"type":"out","id":1,"time":"soon"}`, 400, "time"},
		{"big body", "s3cret", `{"type":"out","id":1,"time":"` + strings.Repeat("9", 5000) + `"}`, 413, "body"},
		{"no point", "s3cret", `{"type":"out","id":1}`, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := url
			if tc.name == "no point" {
				u = ts.URL + "/api/points/nope/cues"
			}
			code, out := testkit.PostJSON(t, u, tc.token, tc.body)
			if code != tc.want {
				t.Fatalf("status %d, want %d (%v)", code, tc.want, out)
			}
			if msg, _ := out["error"].(string); !strings.Contains(msg, tc.reason) {
				t.Fatalf("error %q does not say %q", msg, tc.reason)
			}
		})
	}
	if n := len(mustPoint(t, st).Cues()); n != 0 {
		t.Fatalf("%d cues stored by refused requests", n)
	}
	code, out := testkit.PostJSON(t, url, "s3cret", fmt.Sprintf(`{"type":"out","id":42,"time":%v,"duration":30}`, at))
	if code != 201 {
		t.Fatalf("out: %d %v", code, out)
	}
	code, out = testkit.PostJSON(t, url, "s3cret", `{"type":"in","id":42}`)
	if code != 201 {
		t.Fatalf("in: %d %v", code, out)
	}
	edge, _ := mustPoint(t, st).Edge()
	cs := mustPoint(t, st).Cues()
	if len(cs) != 2 {
		t.Fatalf("%d cues stored, want 2", len(cs))
	}
	for i, want := range []struct {
		out  bool
		secs float64
	}{{true, at}, {false, edge.Seconds()}} {
		c := cs[i]
		if c.Scheme != media.SchemeSCTE35 || c.ID != 42 || c.Seconds() < want.secs-0.001 || c.Seconds() > want.secs+0.001 {
			t.Fatalf("cue %d: %+v, want at %v", i, c, want.secs)
		}
		s, err := scte35.Decode(c.Data)
		if err != nil {
			t.Fatal(err)
		}
		if s.Command != scte35.SpliceInsert || s.Out != want.out || s.EventID != 42 || !s.HasPTS || s.PTS != uint64(c.Time)&scte35.MaxPTS {
			t.Fatalf("cue %d splice %+v", i, s)
		}
		if want.out && (!s.HasDuration || s.Duration != 30*90000 || c.Duration != 30*90000) {
			t.Fatalf("out cue duration: splice %+v, event %d", s, c.Duration)
		}
	}
	if b, _ := base64.StdEncoding.DecodeString(out["scte35"].(string)); string(b) != string(cs[1].Data) {
		t.Fatalf("response scte35 %v is not the stored splice", out["scte35"])
	}

	// A cut can start and end at the markers: from the break's out to its
	// return; a marker the point does not hold is 422.
	cut := ts.URL + "/api/points/ch/cut"
	if code, res := testkit.PostJSON(t, cut, "s3cret", `{"asset":"nomarker","from":"out:43","to":"in:42"}`); code != 422 {
		t.Fatalf("cut from an unknown marker: %d %v", code, res)
	}
	code, res := testkit.PostJSON(t, cut, "s3cret", `{"asset":"break","from":"out:42","to":"in:42"}`)
	if code != 201 {
		t.Fatalf("cut at the markers: %d %v", code, res)
	}
	// Within a fragment: the cut lies on fragment boundaries, other
	// tracks' fragments straddle them.
	if s, d := res["start"].(float64), ref.Seconds(int64(ref.Frags[2].Duration)); s < at-d || s > at+d {
		t.Fatalf("cut from out:42 (%v s) starts at %v", at, s)
	}
	if e := res["end"].(float64); e < edge.Seconds()-ref.Seconds(int64(ref.Frags[2].Duration))-0.001 || e > edge.Seconds()+0.001 {
		t.Fatalf("cut to in:42 (%v s) ends at %v", edge.Seconds(), e)
	}
}

func mustPoint(t *testing.T, st *store.Store) *store.Point {
	t.Helper()
	p, err := st.Point("ch")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
