package player

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/packagers")

// packagersNow is the wall clock the live manifests of
// testdata/packagers are read at.
var packagersNow = time.Date(2026, 12, 7, 7, 0, 13, 0, time.UTC)

// TestPackagerManifests reads manifests in the shapes other packagers write
// (testdata/packagers: Shaka Packager, Unified Origin, GPAC, Apple's
// segmenter, steering set-ups; each file says what it stands for) and
// compares what the player makes of them — streams, renditions, init
// segments and every segment's number, time, URL and byte range, for each
// content steering pathway — with the .golden file beside it (go test
// -run TestPackagerManifests -update rewrites them). The assertions after
// the golden comparison pin what the golden files must show.
func TestPackagerManifests(t *testing.T) {
	files, err := filepath.Glob("testdata/packagers/*.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	mpds, _ := filepath.Glob("testdata/packagers/*.mpd")
	files = append(files, mpds...)
	if len(files) < 10 {
		t.Fatalf("%d manifests in testdata/packagers", len(files))
	}
	got := map[string]string{}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			switch {
			case strings.HasSuffix(name, ".mpd"):
				dumpMPD(t, &b, data)
			case isMasterPlaylist(data):
				dumpMaster(t, &b, data)
			default:
				mp, err := parseMediaPlaylist(data, mustURL(t, "https://o.example.com/p/"+name))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "target=%v sequence=%d ended=%v hold-back=%v\n", mp.targetDuration, mp.mediaSequence, mp.ended, mp.holdBack)
				r := &Rendition{ID: name}
				applyMedia(r, mp)
				dumpRendition(&b, r, packagersNow)
			}
			got[name] = b.String()
			golden := strings.TrimSuffix(f, filepath.Ext(f)) + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("%s differs from %s:\n%s", name, golden, b.String())
			}
		})
	}

	// What the golden files must say, whatever -update wrote.
	for _, c := range []struct{ file, want string }{
		// $Number$ from startNumber with a SegmentTimeline; text left out.
		{"shaka-vod-number-timeline.mpd", "    3 8.008s+4.004s https://o.example.com/p/h264_360p/3.m4s \n"},
		{"shaka-vod-number-timeline.mpd", "    3 8.021333333s+3.989333333s https://o.example.com/p/audio/3.m4s \n"},
		// BaseURL at four levels, $Time$ epoch times, r.
		{"usp-live-time-baseurls.mpd", "    init https://cdn.example.com/live/channel1/dash/hd/channel1-video=1500000.dash \n"},
		{"usp-live-time-baseurls.mpd", "https://cdn.example.com/live/channel1/dash/channel1-audio_eng=128000-85093555488768.dash \n"},
		// @duration with a printf width: three segments for 10 s.
		{"gpac-static-number-duration.mpd", "    3 8s+4s https://o.example.com/p/v540/seg_00003.m4s \n"},
		// r=-1 up to the next S@t and to the end of the Period, after the PTO.
		{"negative-r-static.mpd", "    2 2s+2s https://o.example.com/p/v/2000000/t7000.m4s \n"},
		{"negative-r-static.mpd", "    5 6s+2.5s https://o.example.com/p/v/2000000/t11000.m4s \n"},
		// Open-ended r=-1 in a live MPD: the segments that have ended 13 s in.
		{"live-open-timeline.mpd", "    105 10s+2s https://o.example.com/p/a/105.m4s \n"},
		// Static multi-period: the first Period; live: the last, at Period@start.
		{"multi-period-static.mpd", "    2 4s+4s https://o.example.com/p/main/v/2.m4s \n"},
		{"multi-period-live.mpd", "    3 1h0m8s+4s https://o.example.com/p/p2/v/3.m4s \n"},
		// Steering: each pathway's BaseURL, at the Period and AdaptationSet.
		{"steering-period-baseurls.mpd", "pathways=[alpha beta] default=beta steering=https://steering.example.com/dash.dcsm\n"},
		{"steering-period-baseurls.mpd", "    2 4s+4s https://beta.example.com/vod/audio-b/2.m4s \n"},
		{"steering-period-baseurls.mpd", "    2 4s+4s https://alpha.example.com/vod/audio-a/2.m4s \n"},
		{"steering-mpd-baseurls.mpd", "    2 2s+2s http://sender2.example.com/b/tok/v/1.m4s \n"},
		// HLS: byte ranges continuing the previous sub-range, EXT-X-MAP range.
		{"apple-byterange-fmp4.m3u8", "    init https://o.example.com/p/main.mp4 0-719\n"},
		{"apple-byterange-fmp4.m3u8", "    3 12.012s+3.003s https://o.example.com/p/main.mp4 3001920-3714419\n"},
		// Discontinuities keep the numbering and the clock; the first map is the init.
		{"live-discontinuity.m3u8", "    2682 8s+4s https://ads.example.com/slate/0.m4s \n"},
		{"live-discontinuity.m3u8", "    init https://o.example.com/p/main/init.mp4 \n"},
		// Masters: I-frame variants left out, the DEFAULT audio chosen,
		// each pathway with its own audio group and the first pathway's IDs.
		{"shaka-master.m3u8", "audio\n  https://o.example.com/p/audio_de/stream.m3u8 "},
		{"steering-master.m3u8", "pathway cdn-b\n"},
		{"steering-master.m3u8", "  https://cdn-a.example.com/live/audio.m3u8 url=https://cdn-b.example.com/live/audio.m3u8\n"},
		{"ts-event.m3u8", "    2 19.95334s+5.005s https://o.example.com/other/segment2.ts \n"},
	} {
		if !strings.Contains(got[c.file], c.want) {
			t.Errorf("%s: no line %q in\n%s", c.file, c.want, got[c.file])
		}
	}
	if strings.Contains(got["shaka-master.m3u8"], "iframe") {
		t.Error("the I-frame variant was taken as a rendition")
	}
}

// dumpMPD writes what the player reads from an MPD: as it comes, then as
// each content steering pathway gives it.
func dumpMPD(t *testing.T, b *strings.Builder, data []byte) {
	t.Helper()
	base := mustURL(t, "https://o.example.com/p/manifest.mpd")
	now := func() time.Time { return packagersNow }
	p, info, err := parseMPD(data, base, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.pathways) > 0 || info.steering != "" {
		fmt.Fprintf(b, "pathways=%v default=%s steering=%s\n", info.pathways, info.defaultPathway, info.steering)
	}
	if info.location != "" {
		fmt.Fprintf(b, "location=%s\n", info.location)
	}
	dumpPresentation(b, p)
	for _, pw := range info.pathways {
		p, _, err := parseMPDPathway(data, base, now, pw)
		if err != nil {
			t.Fatalf("pathway %s: %v", pw, err)
		}
		fmt.Fprintf(b, "pathway %s\n", pw)
		dumpPresentation(b, p)
	}
}

// dumpMaster writes a master playlist's variants and renditions, and the
// presentation each pathway makes of it (before any media playlist).
func dumpMaster(t *testing.T, b *strings.Builder, data []byte) {
	t.Helper()
	m, err := parseMasterPlaylist(data, mustURL(t, "https://o.example.com/p/master.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.pathways) > 0 || m.steering != "" {
		fmt.Fprintf(b, "pathways=%v default=%s steering=%s\n", m.pathways, m.defaultPathway, m.steering)
	}
	for _, v := range m.variants {
		fmt.Fprintf(b, "variant %s bandwidth=%d codecs=%q %dx%d audio=%q pathway=%q\n", v.uri, v.bandwidth, v.codecs, v.width, v.height, v.audioGroup, v.pathway)
	}
	for _, r := range m.media {
		fmt.Fprintf(b, "media %s group=%q name=%q lang=%q default=%v uri=%s\n", r.typ, r.groupID, r.name, r.lang, r.def, r.uri)
	}
	views := []string{""}
	views = append(views, m.pathways...)
	for _, pw := range views {
		if pw != "" {
			fmt.Fprintf(b, "pathway %s\n", pw)
		}
		view := m.pathwayView(pw)
		p, err := hlsPresentation(view, nil)
		if err != nil {
			t.Fatal(err)
		}
		dumpPresentation(b, p)
		// The URL each rendition is fetched from on this pathway.
		for _, v := range view.variants {
			if v.uri != v.id {
				fmt.Fprintf(b, "  %s url=%s\n", v.id, v.uri)
			}
		}
		for _, r := range view.media {
			if r.uri != r.id {
				fmt.Fprintf(b, "  %s url=%s\n", r.id, r.uri)
			}
		}
	}
}

func dumpPresentation(b *strings.Builder, p *Presentation) {
	fmt.Fprintf(b, "%s live=%v update=%v delay=%v\n", p.Format, p.Live, p.UpdatePeriod, p.LiveDelay)
	for _, st := range []*Stream{p.Video, p.Audio} {
		if st == nil {
			continue
		}
		fmt.Fprintf(b, "%s\n", st.Kind)
		for _, r := range st.Renditions {
			dumpRendition(b, r, packagersNow)
		}
	}
}

func dumpRendition(b *strings.Builder, r *Rendition, now time.Time) {
	fmt.Fprintf(b, "  %s bitrate=%d codecs=%q %dx%d loaded=%v ended=%v\n", r.ID, r.Bitrate, r.Codecs, r.Width, r.Height, r.Loaded, r.Ended)
	if r.Init != nil {
		fmt.Fprintf(b, "    init %s %s\n", r.Init.URL, r.Init.Range)
	}
	for _, s := range r.Segments(now) {
		fmt.Fprintf(b, "    %d %v+%v %s %s\n", s.Seq, s.Start, s.Dur, s.URL, s.Range)
	}
}

// TestParsePlaylistErrors: what hls-m3u8's lenient mode lets pass and the
// player cannot use fails the load with a reason.
func TestParsePlaylistErrors(t *testing.T) {
	base := mustURL(t, "http://o/p/index.m3u8")
	for _, c := range []struct{ name, doc, want string }{
		{"no header", "#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.m4s\n", "#EXTM3U"},
		{"no target duration", "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n", "EXT-X-TARGETDURATION"},
		{"bad EXTINF", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:two,\na.m4s\n", "EXTINF duration"},
		{"map range without offset", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"i.mp4\",BYTERANGE=\"700\"\n#EXTINF:2,\na.m4s\n", "EXT-X-MAP"},
		{"master as media", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n", "master playlist where a media"},
	} {
		if _, err := parseMediaPlaylist([]byte(c.doc), base); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
	}
	for _, c := range []struct{ name, doc, want string }{
		{"media as master", "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.m4s\n", "media playlist where a master"},
		{"only I-frames", "#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"i.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "no variant"},
	} {
		if _, err := parseMasterPlaylist([]byte(c.doc), base); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %s", c.name, err, c.want)
		}
	}
}
