package e2e

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
)

// TestClientsSessionFFmpeg: clients outside the browser players, against
// `sluice serve` fed by real ffmpeg pushes.
//
//   - ffmpeg (a demuxer family of its own) opens the DASH and HLS session
//     manifests (/s/<point>/manifest.mpd, master.m3u8: a real session of the
//     built-in scheduler, its BaseURLs and playlists at the built-in sender)
//     and decodes 4 s of each, live and on demand: `ffmpeg -i <session
//     manifest> -t 4 -f null -` exits 0;
//   - every MPD served — the origin's and the session's, live, on demand
//     and after live-to-VOD — passes the schema-order validator and parses
//     with dash-mpd;
//   - the Smooth manifest of a push that declares no bit rate (libx264 in
//     CRF mode) has non-zero QualityLevel bit rates whose fragment URLs
//     answer, and a live Smooth timeline has one c per fragment.
func TestClientsSessionFFmpeg(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	ffmpeg := requireFFmpeg(t)
	root := repoRoot(t)
	art := artifactsDir(t)
	tmp := t.TempDir()
	t0 := time.Now()
	bin := buildSluice(t, root, tmp)
	data := filepath.Join(tmp, "data")

	vod := filepath.Join(tmp, "vod.mp4")
	if out, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=22050",
		"-t", "10", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-b:v", "300k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "48k", vod).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg (asset): %v\n%s", err, out)
	}
	runAll(t, 1, [][]string{{bin, "import", "--data", data, vod, "vod"}})

	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", data, "--no-demo", "--point", "live", "--point", "nobr")
	waitHTTP(t, base+"/", 30*time.Second, serve)
	// "live": two declared renditions and audio (the acceptance push);
	// "nobr": one rendition in CRF mode (no declared bit rate), 20 s, then
	// it ends (live-to-VOD).
	live := startProc(t, "ffmpeg live", filepath.Join(art, "ffmpeg-live.log"), ffmpegLiveArgs(base+"/live.isml/Streams(live)")...)
	nobr := startProc(t, "ffmpeg nobr", filepath.Join(art, "ffmpeg-nobr.log"),
		"ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "20", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac",
		"-avoid_negative_ts", "make_non_negative", "-f", "ismv", "-movflags", "isml+frag_keyframe", base+"/nobr.isml/Streams(nobr)")
	waitSessionsListed(t, base, []string{"live", "nobr"}, 3, live, serve)
	t.Logf("serve and live channels up after %v", time.Since(t0).Round(time.Millisecond))

	get := func(u string) string {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
		}
		return string(b)
	}
	checkMPD := func(name, u string) string {
		t.Helper()
		b := get(u)
		if err := mpdschema.Check([]byte(b)); err != nil {
			t.Errorf("%s (%s) against the MPD schema order: %v\n%s", name, u, err, b)
		}
		return b
	}
	// ffmpeg opens a session manifest and decodes 4 s of it.
	play := func(u string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		start := time.Now()
		out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-nostdin", "-i", u, "-t", "4", "-f", "null", "-").CombinedOutput()
		s := string(out)
		if err != nil || strings.Contains(s, "Failed to open") || strings.Contains(s, "invalid:truncated") {
			t.Errorf("ffmpeg -i %s -t 4 -f null -: %v\n%s", u, err, s)
			return
		}
		frames := regexp.MustCompile(`frame=\s*(\d+)`).FindAllStringSubmatch(s, -1)
		if len(frames) == 0 {
			t.Errorf("ffmpeg -i %s: no frame decoded\n%s", u, s)
			return
		}
		t.Logf("ffmpeg -i %s: %s frames in %v", u, frames[len(frames)-1][1], time.Since(start).Round(time.Millisecond))
	}
	// Smooth without a declared bit rate: non-zero, and its URLs answer;
	// live: one c per fragment.
	if !strings.Contains(get(base+"/nobr.isml/manifest.mpd"), `id="video_0"`) {
		t.Fatal("the nobr push declared a video bit rate (no video_0 track): nothing to test")
	}
	ss := get(base + "/nobr.isml/Manifest")
	if !strings.Contains(ss, `IsLive="TRUE"`) {
		t.Fatalf("nobr is no longer live (a loaded machine?): its Smooth manifest\n%s", ss)
	}
	if strings.Contains(ss, ` r="`) {
		t.Errorf("live Smooth manifest with c@r:\n%s", ss)
	}
	levels := regexp.MustCompile(`<StreamIndex [^>]*Name="([^"]+)"[^>]*>\s*<QualityLevel [^>]*Bitrate="(\d+)"[^>]*>[^<]*</QualityLevel>\s*<c t="(\d+)"`).FindAllStringSubmatch(ss, -1)
	if len(levels) != 2 {
		t.Fatalf("want a video and an audio StreamIndex:\n%s", ss)
	}
	for _, l := range levels {
		t.Logf("nobr Smooth %s: Bitrate %s", l[1], l[2])
		if l[2] == "0" {
			t.Errorf("%s: QualityLevel Bitrate=\"0\":\n%s", l[1], ss)
			continue
		}
		get(base + "/nobr.isml/QualityLevels(" + l[2] + ")/Fragments(" + l[1] + "=" + l[3] + ")")
	}

	for _, point := range []string{"live", "vod"} {
		checkMPD(point+" origin MPD", base+"/"+point+".isml/manifest.mpd")
		mpd := checkMPD(point+" session MPD", base+"/s/"+point+"/manifest.mpd")
		if loc := regexp.MustCompile(`<Location>([^<]+)</Location>`).FindStringSubmatch(mpd); loc != nil {
			checkMPD(point+" session MPD reload", base+loc[1])
		}
		for _, b := range regexp.MustCompile(`<BaseURL[^>]*>([^<]+)</BaseURL>`).FindAllStringSubmatch(mpd, -1) {
			if len(b[1]) > 90 {
				t.Errorf("%s: BaseURL of %d characters: %s", point, len(b[1]), b[1])
			}
		}
		play(base + "/s/" + point + "/manifest.mpd")
		play(base + "/s/" + point + "/master.m3u8")
	}

	// The session's segments, as the sender serves them: one track_ID per
	// switching set (both video renditions, init and fragments), and no
	// Smooth box in a DASH/HLS fragment.
	ids := map[string]map[uint32]bool{}
	for _, sg := range sessionSegments(t, base, "live", "") {
		b := []byte(get(sg.url))
		kind, _, _ := strings.Cut(sg.track, "_")
		if ids[kind] == nil {
			ids[kind] = map[uint32]bool{}
		}
		if sg.file == "init.mp4" {
			h, err := media.ParseCMAFHeader(b)
			if err != nil || len(h.Tracks) != 1 {
				t.Fatalf("%s: %v", sg.url, err)
			}
			ids[kind][h.Tracks[0].TrackID] = true
			continue
		}
		moofRaw, _, err := media.SplitFragment(b)
		if err != nil {
			t.Fatalf("%s: %v", sg.url, err)
		}
		m, err := media.DecodeMoof(moofRaw)
		if err != nil {
			t.Fatalf("%s: %v", sg.url, err)
		}
		ids[kind][m.Traf.Tfhd.TrackID] = true
		for _, c := range m.Traf.Children {
			if u, ok := c.(*mp4.UUIDBox); ok && (u.Tfxd != nil || u.Tfrf != nil) {
				t.Errorf("%s: a Smooth tfxd/tfrf box in a DASH/HLS segment", sg.url)
			}
		}
	}
	if len(ids["video"]) != 1 || len(ids["audio"]) != 1 {
		t.Errorf("track_IDs per switching set: %v, want one each", ids)
	}

	// After live-to-VOD: the push ends, the MPDs turn static.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(get(base+"/nobr.isml/manifest.mpd"), `type="static"`) {
		if time.Now().After(deadline) {
			t.Fatalf("nobr did not turn static within 60 s after its push\nffmpeg:\n%s", nobr.out)
		}
		time.Sleep(time.Second)
	}
	checkMPD("nobr origin MPD after live-to-VOD", base+"/nobr.isml/manifest.mpd")
	checkMPD("nobr session MPD after live-to-VOD", base+"/s/nobr/manifest.mpd")
	t.Logf("done after %v", time.Since(t0).Round(time.Millisecond))
}
