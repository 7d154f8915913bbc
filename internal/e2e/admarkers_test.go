package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	dashmpd "github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/scte35"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// sentMarker is an SCTE-35 marker the test sends and expects back.
type sentMarker struct {
	at     float64 // seconds of media time
	splice scte35.Splice
	dur    float64 // event duration (s), 0: none
}

// TestAdMarkers: SCTE-35 ad markers and ID3 timed metadata from ingest and
// the cues API to DASH and HLS, live, after live-to-VOD, across a restart
// of the origin and in an archive cut. An encoder (ffmpeg's CMAF, with
// emsg boxes added with mp4ff: a version 0 splice_insert out of 30 s
// before the second video fragment, a version 1 time_signal on a 1 kHz
// timescale before the fourth, a version 1 ID3 tag before the first audio
// fragment) pushes to an origin; the cues API inserts the return (splice
// id of the out). The MPD (schema-checked) carries them as period
// EventStreams whose Binary decodes to exactly the splice sent, at its
// time; every HLS media playlist (parsed with hls-m3u8) carries them as
// EXT-X-DATERANGE with SCTE35-OUT/CMD/IN whose hex decodes alike and whose
// START-DATE is the program date time of the marker.
func TestAdMarkers(t *testing.T) {
	t.Parallel() // no browser
	dir := t.TempDir()
	bin := buildSluice(t, repoRoot(t), dir)
	data := filepath.Join(dir, "data")
	base, origin := distStartRole(t, bin, "origin", "origin.log", freePort(t),
		"--data", data, "--point", "ads", "--admin-token", "s3cret")
	ads := pushAdMarkers(t, base, dir)
	if code, res := testkit.PostJSON(t, base+"/api/points/ads/cues", "", `{"type":"in","id":100,"time":9}`); code != http.StatusUnauthorized {
		t.Fatalf("cue without the token: %d %v", code, res)
	}
	if code, res := testkit.PostJSON(t, base+"/api/points/ads/cues", "s3cret", `{"type":"in","id":100,"time":"later"}`); code != http.StatusBadRequest {
		t.Fatalf("cue with a bad time: %d %v", code, res)
	}
	all := ads.markers()
	checkMarkers(t, base, "ads", "dynamic", all, true)
	// The segments carry the emsg boxes in-band: the ID3 tag before the
	// first audio fragment, the break out before the second video one.
	for _, c := range []struct {
		kind   string
		n      int
		scheme string
		data   []byte
		at     float64
	}{{"audio", 0, media.SchemeID3, ads.id3, 1}, {"video", 1, media.SchemeSCTE35, ads.outData, ads.out.at}} {
		evs := servedEvents(t, base, "ads", c.kind, c.n)
		if len(evs) != 1 || evs[0].Scheme != c.scheme || !bytes.Equal(evs[0].Data, c.data) || math.Abs(evs[0].Seconds()-c.at) > 0.001 {
			t.Errorf("%s segment %d: in-band events %+v, want %s at %v s", c.kind, c.n, evs, c.scheme, c.at)
		}
	}

	// Live-to-VOD: the end of both streams.
	ads.end(t, base)
	checkMarkers(t, base, "ads", "static", all, true)

	// A restart of the origin keeps them (they are on disk).
	origin.stop(t)
	base, _ = distStartRole(t, bin, "origin", "origin2.log", freePort(t),
		"--data", data, "--point", "ads", "--admin-token", "s3cret")
	checkMarkers(t, base, "ads", "static", all, true)

	// An archive cut from 4 s to the break's return (the fragments that
	// start in [4, 9): to 10 s) takes the markers in its span.
	if code, res := testkit.PostJSON(t, base+"/api/points/ads/cut", "s3cret", `{"asset":"adsclip","from":4,"to":"in:100"}`); code != http.StatusCreated {
		t.Fatalf("cut: %d %v", code, res)
	}
	checkMarkers(t, base, "adsclip", "static", []sentMarker{ads.signal, ads.in}, false)
}

// adPush is what pushAdMarkers sent to point "ads".
type adPush struct {
	out, signal, in sentMarker
	outData, id3    []byte
}

// markers are the SCTE-35 markers sent, in time order.
func (a adPush) markers() []sentMarker { return []sentMarker{a.out, a.signal, a.in} }

// pushAdMarkers encodes 12 s of CMAF video and audio with ffmpeg (in dir),
// adds emsg boxes with mp4ff — a version 0 splice_insert out of 30 s at
// 2.5 s before the second video fragment, a version 1 time_signal at 7 s
// (on a 1 kHz timescale) before the fourth, a version 1 ID3 tag at 1 s
// before the first audio fragment — and pushes both, without their end,
// to point "ads" of base (a live channel); then it inserts the break's
// return at 9 s through the cues API (admin token "s3cret").
func pushAdMarkers(t *testing.T, base, dir string) adPush {
	t.Helper()
	videoFile, audioFile := testmedia.CMAFFiles(t, dir, 12, 0)
	a := adPush{
		out: sentMarker{at: 2.5, dur: 30, splice: scte35.Splice{Command: scte35.SpliceInsert, Tier: 0xFFF, EventID: 100,
			Out: true, HasPTS: true, PTS: 225000, HasDuration: true, Duration: 30 * 90000, AutoReturn: true}},
		signal: sentMarker{at: 7, splice: scte35.Splice{Command: scte35.TimeSignal, Tier: 0xFFF, HasPTS: true, PTS: 7 * 90000}},
		in:     sentMarker{at: 9, splice: scte35.Splice{Command: scte35.SpliceInsert, Tier: 0xFFF, EventID: 100, HasPTS: true, PTS: 9 * 90000}},
		id3:    []byte("ID3\x04\x00\x00\x00\x00\x00\x1aTXXX\x00\x00\x00\x10\x00\x00\x03hello\x00sluice\x00"),
	}
	enc := func(s scte35.Splice) []byte {
		b, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	emsg := func(b *mp4.EmsgBox) []byte {
		var buf bytes.Buffer
		if err := b.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	a.outData = enc(a.out.splice)
	// The video: 2 s fragments from 0 on a 90 kHz timescale.
	video := withEmsg(t, testmedia.ReadFile(t, videoFile), map[int][]byte{
		1: emsg(&mp4.EmsgBox{Version: 0, TimeScale: 90000, PresentationTimeDelta: 45000, EventDuration: 30 * 90000,
			ID: 100, SchemeIDURI: media.SchemeSCTE35, MessageData: a.outData}),
		3: emsg(&mp4.EmsgBox{Version: 1, TimeScale: 1000, PresentationTime: 7000, EventDuration: media.UnknownDuration,
			ID: 101, SchemeIDURI: media.SchemeSCTE35, MessageData: enc(a.signal.splice)}),
	})
	audio := withEmsg(t, testmedia.ReadFile(t, audioFile), map[int][]byte{
		0: emsg(&mp4.EmsgBox{Version: 1, TimeScale: 1000, PresentationTime: 1000, EventDuration: media.UnknownDuration,
			ID: 1, SchemeIDURI: media.SchemeID3, Value: "1", MessageData: a.id3}),
	})
	postBody(t, base+"/ads.isml/Streams(video)", stripEnd(t, video))
	postBody(t, base+"/ads.isml/Streams(audio)", stripEnd(t, audio))
	if code, res := testkit.PostJSON(t, base+"/api/points/ads/cues", "s3cret", `{"type":"in","id":100,"time":9}`); code != http.StatusCreated {
		t.Fatalf("cue: %d %v", code, res)
	}
	return a
}

// end ends both streams of point "ads" (live-to-VOD).
func (a adPush) end(t *testing.T, base string) {
	t.Helper()
	postBody(t, base+"/ads.isml/Streams(video)", mp4EndBox)
	postBody(t, base+"/ads.isml/Streams(audio)", mp4EndBox)
}

// postBody pushes one body and wants 200.
func postBody(t *testing.T, url string, body []byte) {
	t.Helper()
	resp, err := http.Post(url, "video/mp4", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push %s: %s", url, resp.Status)
	}
}

// servedEvents returns the emsg boxes before the moof of segment n of the
// first Representation of the kind in the MPD of point pp.
func servedEvents(t *testing.T, base, pp, kind string, n int) []media.Emsg {
	t.Helper()
	_, body := get(t, base+"/"+pp+".isml/manifest.mpd")
	m, err := dashmpd.ReadFromString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, as := range m.Periods[0].AdaptationSets {
		if string(as.ContentType) != kind || as.SegmentTemplate == nil || as.SegmentTemplate.SegmentTimeline == nil {
			continue
		}
		var starts []uint64
		for _, s := range as.SegmentTemplate.SegmentTimeline.S {
			at := s.T
			if at == nil && len(starts) > 0 {
				v := starts[len(starts)-1]
				at = &v
			}
			for k := 0; k <= s.R; k++ {
				starts = append(starts, *at+uint64(k)*s.D)
			}
		}
		if n >= len(starts) {
			t.Fatalf("%s: %d segments listed", kind, len(starts))
		}
		_, seg := get(t, fmt.Sprintf("%s/%s.isml/tracks/%s/%d.m4s", base, pp, as.Representations[0].Id, starts[n]))
		var raw []byte
		for _, b := range testmedia.Boxes(t, seg) {
			if b.Type != "emsg" {
				break
			}
			raw = append(raw, b.Raw...)
		}
		evs, err := media.DecodeEvents(raw)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	t.Fatalf("no %s AdaptationSet with a SegmentTimeline", kind)
	return nil
}

// mp4EndBox is the empty mfra that ends a CMAF push.
var mp4EndBox = []byte{0, 0, 0, 8, 'm', 'f', 'r', 'a'}

// withEmsg returns a CMAF body with the given boxes inserted before the
// moof of fragment i (counted from 0).
func withEmsg(t *testing.T, body []byte, before map[int][]byte) []byte {
	t.Helper()
	var out []byte
	n := 0
	for _, b := range testmedia.Boxes(t, body) {
		if b.Type == "moof" {
			out = append(out, before[n]...)
			n++
		}
		out = append(out, b.Raw...)
	}
	if n < 5 {
		t.Fatalf("the CMAF body has %d fragments", n)
	}
	return out
}

// stripEnd removes the mfra box that ends a CMAF body.
func stripEnd(t *testing.T, body []byte) []byte {
	t.Helper()
	var out []byte
	for _, b := range testmedia.Boxes(t, body) {
		if b.Type != "mfra" {
			out = append(out, b.Raw...)
		}
	}
	return out
}

// checkMarkers checks the markers of point pp in its MPD and in every HLS
// media playlist; withID3 expects the ID3 tag (at 1 s) in the MPD too.
func checkMarkers(t *testing.T, base, pp, mpdType string, want []sentMarker, withID3 bool) {
	t.Helper()
	code, body := get(t, base+"/"+pp+".isml/manifest.mpd")
	if code != http.StatusOK {
		t.Fatalf("%s MPD: %d", pp, code)
	}
	if err := mpdschema.Check(body); err != nil {
		t.Fatalf("%s MPD: %v\n%s", pp, err, body)
	}
	m, err := dashmpd.ReadFromString(string(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.GetType() != mpdType {
		t.Fatalf("%s MPD type %s, want %s", pp, m.GetType(), mpdType)
	}
	var scte []*dashmpd.EventType
	var pto uint64
	for _, es := range m.Periods[0].EventStreams {
		if es.SchemeIdUri == "urn:scte:scte35:2014:xml+bin" {
			scte, pto = es.Events, es.PresentationTimeOffset
		}
	}
	id3 := 0 // AdaptationSets that declare the in-band ID3
	for _, as := range m.Periods[0].AdaptationSets {
		for _, ies := range as.InbandEventStreams {
			if ies.SchemeIdUri == media.SchemeID3 && ies.Value == "1" && as.ContentType == "audio" {
				id3++
			}
		}
	}
	var origin float64 // the period's start on the media timeline
	if m.Periods[0].Start != nil && pto > 0 {
		origin = float64(pto) / 90000
	}
	if len(scte) != len(want) {
		t.Fatalf("%s MPD: %d SCTE-35 events, want %d\n%s", pp, len(scte), len(want), body)
	}
	for i, w := range want {
		e := scte[i]
		at := float64(e.PresentationTime) / 90000
		if math.Abs(at-w.at) > 0.001 || (origin > 0 && at < origin) {
			t.Errorf("%s MPD: event %d at %.3f s, want %.3f", pp, i, at, w.at)
		}
		if w.dur > 0 && math.Abs(float64(e.Duration)/90000-w.dur) > 0.001 {
			t.Errorf("%s MPD: event %d lasts %d ticks, want %v s", pp, i, e.Duration, w.dur)
		}
		if e.Signal == nil || e.Signal.Binary == nil {
			t.Fatalf("%s MPD: event %d without Signal/Binary", pp, i)
		}
		b, err := base64.StdEncoding.DecodeString(e.Signal.Binary.Value)
		if err != nil {
			t.Fatal(err)
		}
		checkSplice(t, fmt.Sprintf("%s MPD event %d", pp, i), b, w.splice)
	}
	if withID3 && id3 != 1 {
		t.Errorf("%s MPD: %d audio AdaptationSets declare the in-band ID3, want 1\n%s", pp, id3, body)
	}
	anchor, err := time.Parse(time.RFC3339, string(m.AvailabilityStartTime))
	if mpdType == "dynamic" && err != nil {
		t.Fatalf("availabilityStartTime %q: %v", m.AvailabilityStartTime, err)
	}

	_, master := get(t, base+"/"+pp+".isml/master.m3u8")
	uris := regexp.MustCompile(`(?m)^tracks/.*\.m3u8$|URI="(tracks/[^"]*\.m3u8)"`).FindAllSubmatch(master, -1)
	if len(uris) < 2 {
		t.Fatalf("%s master: %d media playlists\n%s", pp, len(uris), master)
	}
	for _, u := range uris {
		uri := string(u[0])
		if len(u[1]) > 0 {
			uri = string(u[1])
		}
		_, b := get(t, base+"/"+pp+".isml/"+uri)
		pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
		if err != nil || typ != m3u8.MEDIA {
			t.Fatalf("%s %s: %v\n%s", pp, uri, err, b)
		}
		mp := pl.(*m3u8.MediaPlaylist)
		var drs []*m3u8.DateRange
		var first time.Time // program date time of the first segment
		for _, s := range mp.Segments {
			if s == nil {
				break
			}
			if first.IsZero() {
				first = s.ProgramDateTime
			}
			drs = append(drs, s.SCTE35DateRanges...)
		}
		if len(drs) != len(want) {
			t.Fatalf("%s %s: %d SCTE-35 date ranges, want %d\n%s", pp, uri, len(drs), len(want), b)
		}
		for i, w := range want {
			dr := drs[i]
			hx := dr.SCTE35Out + dr.SCTE35In + dr.SCTE35Cmd
			attr := map[bool]string{true: "out", false: "in"}[w.splice.Out]
			if w.splice.Command != scte35.SpliceInsert {
				attr = "cmd"
			}
			if got := map[string]string{"out": dr.SCTE35Out, "in": dr.SCTE35In, "cmd": dr.SCTE35Cmd}[attr]; got == "" || got != hx {
				t.Errorf("%s %s: date range %d: want only SCTE35-%s, got %+v", pp, uri, i, strings.ToUpper(attr), dr)
			}
			raw, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(hx), "0x"))
			if err != nil {
				t.Fatal(err)
			}
			checkSplice(t, fmt.Sprintf("%s %s date range %d", pp, uri, i), raw, w.splice)
			// The return of a break whose out is listed shares the out's
			// ID and START-DATE and says the break's DURATION.
			start, dur := w.at, 0.0
			for k := range i {
				o := want[k]
				if attr == "in" && o.splice.Command == scte35.SpliceInsert && o.splice.Out && o.splice.EventID == w.splice.EventID {
					start, dur = o.at, w.at-o.at
					if drs[k].ID != dr.ID {
						t.Errorf("%s %s: date range %d has ID %q, its out %q", pp, uri, i, dr.ID, drs[k].ID)
					}
				}
			}
			if !anchor.IsZero() {
				if want := anchor.Add(time.Duration(start * float64(time.Second))); !dr.StartDate.Equal(want) {
					t.Errorf("%s %s: date range %d starts %v, want %v", pp, uri, i, dr.StartDate, want)
				}
			}
			if (dur > 0) != (dr.Duration != nil) || (dr.Duration != nil && math.Abs(*dr.Duration-dur) > 0.001) {
				t.Errorf("%s %s: date range %d DURATION %v, want %v", pp, uri, i, dr.Duration, dur)
			}
			if (w.dur > 0) != (dr.PlannedDuration != nil) || (dr.PlannedDuration != nil && *dr.PlannedDuration != w.dur) {
				t.Errorf("%s %s: date range %d PLANNED-DURATION %v, want %v", pp, uri, i, dr.PlannedDuration, w.dur)
			}
		}
	}
}

func checkSplice(t *testing.T, what string, b []byte, want scte35.Splice) {
	t.Helper()
	s, err := scte35.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	s.CWIndex = want.CWIndex
	if !reflect.DeepEqual(s, want) {
		t.Errorf("%s: splice\n%+v\nwant\n%+v", what, s, want)
	}
}

// TestAdMarkersPlayers: the markers of pushAdMarkers, after live-to-VOD,
// reach the players' callbacks: dash.js fires its SCTE-35 events (MPD
// EventStream, SCTE 214 Signal/Binary) and its in-band ID3 event, hls.js
// reads the EXT-X-DATERANGE tags and the ID3 emsg of the fMP4 segments,
// Shaka Player fires timelineregionadded for the MPD events and
// 'metadata' for the ID3 tag — each SCTE-35 marker with exactly the
// section sent, each at its media time (within 0.5 s). The three play at
// once, 6 s each.
func TestAdMarkersPlayers(t *testing.T) {
	b := setupBrowser(t, "ffmpeg")
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(b.art, "sluice.log"), b.bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", filepath.Join(b.tmp, "data"), "--admin-token", "s3cret",
		"--no-demo", "--point", "ads", "--player-dir", filepath.Join(b.webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)
	ads := pushAdMarkers(t, base, b.tmp)
	ads.end(t, base)
	checkMarkers(t, base, "ads", "static", ads.markers(), true)

	players := []struct{ kind, manifest string }{{"dash", "manifest.mpd"}, {"hls", "master.m3u8"}, {"shaka", "manifest.mpd"}}
	var runs []playRun
	for _, p := range players {
		runs = append(runs, playRun{p.kind, base + "/ads.isml/" + p.manifest, playEnv{args: []string{"--markers"}},
			filepath.Join(b.art, "ads-"+p.kind+".png")})
	}
	outs := startPlays(b.webDir, runs, 6, 3)()
	for _, o := range outs {
		if o.err != nil {
			t.Errorf("%s: %v\n%s", o.kind, o.err, o.stderr)
			continue
		}
		checkPlay(t, o.r, 3)
		for _, m := range o.r.Markers {
			at := "-"
			if m.T != nil {
				at = strconv.FormatFloat(*m.T, 'f', 3, 64)
			}
			t.Logf("%s marker: %s %s t=%s key=%s data=%s", o.kind, m.Ev, m.Scheme, at, m.Key, m.Data)
		}
		for i, w := range ads.markers() {
			want := hex.EncodeToString(mustEncode(t, w.splice))
			found := false
			for _, m := range o.r.Markers {
				if strings.EqualFold(m.Data, want) && (m.T == nil || math.Abs(*m.T-w.at) <= 0.5) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no callback for SCTE-35 marker %d (%s at %v s)", o.kind, i, want, w.at)
			}
		}
		// The ID3 tag: dash.js and hls.js hand over the tag as sent,
		// Shaka Player its frames ('metadata', org.id3).
		want := hex.EncodeToString(ads.id3)
		found := false
		for _, m := range o.r.Markers {
			if (strings.EqualFold(m.Data, want) || (o.kind == "shaka" && m.Scheme == "org.id3" && m.Key == "TXXX")) &&
				m.T != nil && math.Abs(*m.T-1) <= 0.5 {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no callback for the ID3 tag at 1 s", o.kind)
		}
	}
}

func mustEncode(t *testing.T, s scte35.Splice) []byte {
	t.Helper()
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
