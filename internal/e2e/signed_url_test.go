package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testmedia"
	"github.com/sluice-media/sluice/internal/urlsign"
)

// TestSignedURLPlayers (docs/origin.md, "Signed player URLs"): `sluice serve --signed-urls`
// answers 403 to unsigned, expired and wrong-prefix requests on the origin
// and on the scheduler's /s/ sessions, and unmodified players play URLs
// minted by `sluice sign-url`: dash.js from the origin (the manifest
// response sets the token's cookie, the segment requests carry it) and
// hls.js through a scheduler session (opens and playlist reloads carry the
// cookie, segments come from the sender with the session's tokens).
func TestSignedURLPlayers(t *testing.T) {
	longTest(t)
	b := setupBrowser(t)
	webDir, art, tmp, bin := b.webDir, b.art, b.tmp, b.bin
	data := filepath.Join(tmp, "data")
	if out, err := exec.Command(bin, "import", "--quiet", testmedia.Sample(t), "vod", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	keyFile := filepath.Join(tmp, "url.key")
	if err := os.WriteFile(keyFile, []byte(randomHex(24)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	base := "http://" + addr
	serve := startProc(t, "sluice serve", filepath.Join(art, "sluice.log"), bin, "serve", "--listen", addr, "--data", data,
		"--no-demo", "--player-dir", filepath.Join(webDir, "node_modules"), "--signed-urls", "--url-key-file", keyFile)
	waitHTTP(t, base+"/healthz", 30*time.Second, serve)

	sign := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"sign-url", "--key-file", keyFile}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("sign-url %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	key, err := urlsign.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	status := func(c *http.Client, u string) int {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	hour := time.Now().Add(time.Hour)
	for _, c := range []struct {
		name, url string
		want      int
	}{
		{"origin, unsigned", base + "/vod.isml/manifest.mpd", 403},
		{"origin, expired", base + "/vod.isml/manifest.mpd?st=" + key.Token("/vod.isml/", time.Now().Add(-time.Minute)), 403},
		{"origin, wrong prefix", base + "/vod.isml/manifest.mpd?st=" + key.Token("/other.isml/", hour), 403},
		{"origin, forged", base + "/vod.isml/manifest.mpd?st=" + urlsign.Key("not the server's key!").Token("/vod.isml/", hour), 403},
		{"session open, unsigned", base + "/s/vod/manifest.mpd", 403},
		{"session open, origin token", base + "/s/vod/manifest.mpd?st=" + key.Token("/vod.isml/", hour), 403},
		{"origin, signed", sign(base + "/vod.isml/manifest.mpd"), 200},
		{"session open, signed", sign(base + "/s/vod/manifest.mpd"), 200},
	} {
		if got := status(http.DefaultClient, c.url); got != c.want {
			t.Errorf("%s: %d, want %d (%s)", c.name, got, c.want, c.url)
		}
	}
	// A session's reloads need the cookie the open set.
	jar, _ := cookiejar.New(nil)
	pc := &http.Client{Jar: jar}
	resp, err := pc.Get(sign(base + "/s/vod/master.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	master, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The session's own master playlist (its steering manifest and the
	// pathway playlists the sender passes on are reached with the session
	// ID alone).
	var media string
	if m := regexp.MustCompile(`SERVER-URI="(/s/vod/~[0-9a-f]+/)steering\.json"`).FindSubmatch(master); m != nil {
		media = base + string(m[1]) + "master.m3u8"
	}
	if media == "" {
		t.Fatalf("no session in the signed master (%d):\n%s", resp.StatusCode, master)
	}
	if got := status(pc, media); got != 200 {
		t.Errorf("session reload with the cookie: %d", got)
	}
	if got := status(http.DefaultClient, media); got != 403 {
		t.Errorf("session reload without the cookie: %d, want 403", got)
	}

	for _, p := range []struct{ kind, url string }{
		{"dash", sign(base + "/vod.isml/manifest.mpd")},
		{"hls", sign(base + "/s/vod/master.m3u8")},
	} {
		start := time.Now()
		r := runPlay(t, webDir, p.url, p.kind, 8, 5, filepath.Join(art, "screenshot-signed-"+p.kind+".png"))
		t.Logf("%s played %s in %v", p.kind, p.url, time.Since(start).Round(time.Millisecond))
		checkPlay(t, r, 5)
	}
	if !strings.Contains(serve.out.String(), "signed URL required") {
		t.Error("the refusals were not logged")
	}
}
