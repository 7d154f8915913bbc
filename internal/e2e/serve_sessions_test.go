package e2e

import (
	"bytes"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServeSessionTokens: the single-node path of `sluice serve`
// (/s/ sessions, segments from the in-process sender at /b/) with a short
// token TTL (--token-ttl 15s: the session grants are renewed every 5 s).
// hls.js, Shaka Player (HLS and DASH) and dash.js in Chromium, each with a
// 6 s buffer, play a live ffmpeg push and then an on-demand asset for 20 s,
// through at least three renewals: no underrun, no error (not even one
// dash.js recovers from), and every segment they received is the origin's,
// byte for byte.
func TestServeSessionTokens(t *testing.T) {
	longTest(t)
	t0 := time.Now()
	b := setupBrowser(t)
	ffmpeg := requireFFmpeg(t)
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin

	const playFor = 20
	data := filepath.Join(tmp, "data")
	mp4 := filepath.Join(tmp, "vod.mp4")
	startAssetEncode(t, ffmpeg, mp4, playFor+30)()
	runAll(t, 1, [][]string{{bin, "import", "--data", data, mp4, "vod"}})
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", data, "--token-ttl", "15s",
		"--no-demo", "--point", "live", "--player-dir", filepath.Join(webDir, "node_modules"))
	waitHTTP(t, base+"/", 30*time.Second, serve)
	ff := startProc(t, "ffmpeg", filepath.Join(art, "ffmpeg.log"), ffmpegLiveArgs(base+"/live.isml/Streams(live)")...)
	waitSessionsListed(t, base, []string{"live"}, 4, ff, serve)
	t.Logf("serve and live channel up after %v", time.Since(t0).Round(time.Millisecond))

	orig := originCache{base: base, sums: map[string]string{}}
	for _, point := range []string{"live", "vod"} {
		grants, _ := scrapeMetric(base, "sluice_sender_session_grants_total")
		players := sessionPlayers()
		playSessions(t, webDir, art, point, players, playFor, func(p *sessionPlayer) string {
			return base + "/s/" + point + "/" + p.file
		})()
		renewals, _ := scrapeMetric(base, "sluice_sender_session_grants_total")
		for _, p := range players {
			r := p.res
			checkPlayed(t, point+" "+p.name, r)
			for _, w := range r.Warnings {
				if bytes.Contains(w, []byte(`"failover"`)) {
					t.Errorf("%s %s: a segment request failed: %s", point, p.name, w)
				}
			}
			for _, f := range r.Fetched {
				u, err := url.Parse(f.URL)
				if err != nil {
					t.Errorf("%s fetched %q", p.name, f.URL)
					continue
				}
				parts := strings.Split(u.Path, "/")
				if want := orig.sum(t, point, parts[len(parts)-2], parts[len(parts)-1]); want != f.SHA256 {
					t.Errorf("%s %s: %s differs from the origin's", point, p.name, f.URL)
				}
			}
			if len(r.Fetched) == 0 {
				t.Errorf("%s %s: nothing recorded", point, p.name)
			}
		}
		// Each session is granted when it opens, then renewed every 5 s
		// (the count includes the test's own sessions).
		t.Logf("%s: %v grants and renewals at the sender in %ds of play (the players' and the test's sessions)", point, renewals-grants, playFor)
		if renewals-grants < 4*float64(len(players)) {
			t.Errorf("%s: %v grants for %d sessions: fewer than three renewals each", point, renewals-grants, len(players))
		}
	}
	t.Logf("total %v", time.Since(t0).Round(time.Second))

}
