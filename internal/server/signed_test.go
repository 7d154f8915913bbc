package server

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/urlsign"
)

// TestSignedURLs: with signed_urls required for point ch, an origin and a
// distribution server in front of it answer 403 to player requests
// without a valid token for the path (missing, expired, for another
// prefix, forged) and serve a player that follows a signed master
// playlist with a cookie jar (segments by relative URL, no query); point
// other, the index for schedulers and the ingest stay as they were.
func TestSignedURLs(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "url.key")
	os.WriteFile(keyFile, []byte("a signing key of 32 bytes, or so\n"), 0o600)
	key, err := urlsign.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	cfg := config.Defaults()
	cfg.Data = filepath.Join(dir, "data")
	cfg.Points = []config.Point{{Name: "ch"}, {Name: "other"}}
	cfg.SignedURLs = config.SignedURLs{Require: true, KeyFile: keyFile, Points: []string{"ch"}}
	org, err := New(cfg, Roles{Ingest: true, Origin: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	ots := httptest.NewServer(org.Handler())
	defer ots.Close()
	body, err := os.ReadFile("../media/testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	for _, pp := range []string{"ch", "other"} {
		resp, err := http.Post(ots.URL+"/"+pp+".isml/Streams(s)", "video/mp4", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("push to %s (ingest needs no signed URL): %d", pp, resp.StatusCode)
		}
	}
	dcfg := config.Defaults()
	dcfg.Distribution.Origins = []string{ots.URL}
	dcfg.SignedURLs = cfg.SignedURLs
	dist, err := New(dcfg, Roles{Distribution: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	dts := httptest.NewServer(dist.Handler())
	defer dts.Close()

	status := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tier := range []struct{ name, base string }{{"origin", ots.URL}, {"distribution", dts.URL}} {
		exp := time.Now().Add(time.Hour)
		for _, c := range []struct {
			name, path string
			want       int
		}{
			{"unsigned", "/ch.isml/master.m3u8", 403},
			{"expired", "/ch.isml/master.m3u8?st=" + key.Token("/ch.isml/", time.Now().Add(-time.Second)), 403},
			{"another prefix", "/ch.isml/master.m3u8?st=" + key.Token("/other.isml/", exp), 403},
			{"forged", "/ch.isml/master.m3u8?st=" + urlsign.Key("someone else's key!!").Token("/ch.isml/", exp), 403},
			{"a point without the requirement", "/other.isml/master.m3u8", 200},
		} {
			if got := status(tier.base + c.path); got != c.want {
				t.Errorf("%s, %s: %d, want %d", tier.name, c.name, got, c.want)
			}
		}
		// A player: the signed master URL, then relative URLs with the
		// cookie the first answer set.
		signed, err := key.SignURL(tier.base+"/ch.isml/master.m3u8", "/ch.isml/", exp)
		if err != nil {
			t.Fatal(err)
		}
		jar, _ := cookiejar.New(nil)
		pc := &http.Client{Jar: jar}
		fetch := func(u string) (string, string) {
			t.Helper()
			resp, err := pc.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: player GET %s: %d %s", tier.name, u, resp.StatusCode, b)
			}
			base, _ := url.Parse(u)
			if !bytes.HasPrefix(b, []byte("#EXTM3U")) {
				return "", ""
			}
			for _, line := range strings.Split(string(b), "\n") {
				line = strings.TrimSpace(line)
				if line != "" && !strings.HasPrefix(line, "#") {
					next, err := base.Parse(line)
					if err != nil {
						t.Fatalf("%s: %q in %s: %v", tier.name, line, u, err)
					}
					return string(b), next.String()
				}
			}
			return string(b), ""
		}
		_, media := fetch(signed)
		if strings.Contains(media, "st=") {
			t.Errorf("%s: the playlist URL carries the token: %s", tier.name, media)
		}
		_, seg := fetch(media)
		if seg == "" {
			t.Fatalf("%s: no segment in %s", tier.name, media)
		}
		fetch(seg)
		// Without the cookie the same segment is refused.
		if got := status(seg); got != 403 {
			t.Errorf("%s: segment without the cookie: %d, want 403", tier.name, got)
		}
	}
	// The index for schedulers is out of the signed URLs' scope.
	if got := status(ots.URL + "/ch.isml/view.json"); got != 200 {
		t.Errorf("view.json: %d", got)
	}
}
