package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFirstPushUnknownPoint: the README's advice for a push to a point the
// server does not have. With -send_expect_100 1, ffmpeg against `sluice
// origin --point live` reports the 404 for point "nope" (without it ffmpeg
// only says "Broken pipe"); `sluice serve` (--points-any) stores the same
// push under "nope".
func TestFirstPushUnknownPoint(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	requireFFmpeg(t)
	root := repoRoot(t)
	tmp := t.TempDir()
	art := artifactsDir(t)
	bin := buildSluice(t, root, tmp)
	push := func(base string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
			"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "3", "-c:v", "libx264", "-g", "50",
			"-send_expect_100", "1", "-f", "ismv", "-movflags", "isml+frag_keyframe", base+"/nope.isml/Streams(v)").CombinedOutput()
		return string(out), err
	}

	port := freePort(t)
	origin := startProc(t, "origin", filepath.Join(art, "origin.log"), bin, "origin",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", filepath.Join(tmp, "o"), "--point", "live")
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, base+"/healthz", time.Minute, origin)
	out, err := push(base)
	if err == nil || !strings.Contains(out, "404") {
		t.Fatalf("ffmpeg -send_expect_100 1 to an unknown point: %v, output %q; want a failure naming 404", err, out)
	}

	port = freePort(t)
	serve := startProc(t, "serve", filepath.Join(art, "serve.log"), bin, "serve", "--no-demo",
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--data", filepath.Join(tmp, "s"))
	base = "http://127.0.0.1:" + strconv.Itoa(port)
	waitHTTP(t, base+"/healthz", time.Minute, serve)
	if out, err := push(base); err != nil {
		t.Fatalf("the same push to sluice serve: %v\n%s", err, out)
	}
	waitHTTP(t, base+"/nope.isml/manifest.mpd", 30*time.Second, serve)
}
