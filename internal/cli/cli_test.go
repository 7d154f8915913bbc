package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/urlsign"
)

func TestMain(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage: sluice <command>"},
		{[]string{"help"}, 0, "serve"},
		{[]string{"bogus"}, 2, `unknown command "bogus"`},
		{[]string{"serve", "--help"}, 0, "-no-demo"},
		{[]string{"origin", "--help"}, 0, "-dvr duration"},
		{[]string{"ingest", "--help"}, 0, "-max-box size"},
		{[]string{"push", "--help"}, 0, "Usage: sluice push"},
		{[]string{"import", "--help"}, 0, "Usage: sluice import"},
		{[]string{"play", "--help"}, 0, "Usage: sluice play"},
		{[]string{"origin", "--dvr", "banana"}, 1, "-dvr"},
		{[]string{"origin", "--log-format", "xml"}, 1, "--log-format"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%v: code %d, output %q; want %d and %q", c.args, code, out.String()+errb.String(), c.code, c.want)
		}
	}
}

func TestSignURL(t *testing.T) {
	t.Setenv("SLUICE_URL_KEY", "a key for the sign-url test")
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"sign-url", "--ttl", "10m",
		"http://o:8080/live.isml/manifest.mpd", "http://s:8090/s/a/b/master.m3u8?start=5"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	key := urlsign.Key("a key for the sign-url test")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, want := range []struct{ path, prefix string }{{"/live.isml/manifest.mpd", "/live.isml/"}, {"/s/a/b/master.m3u8", "/s/a/b/"}} {
		u, err := url.Parse(lines[i])
		if err != nil {
			t.Fatal(err)
		}
		prefix, exp, err := key.Verify(u.Query().Get("st"), want.path, time.Now())
		if err != nil || prefix != want.prefix || time.Until(exp) > 10*time.Minute || time.Until(exp) < 9*time.Minute {
			t.Errorf("%s: prefix %q, expires %v, %v", lines[i], prefix, exp, err)
		}
	}
	if !strings.Contains(lines[1], "start=5") {
		t.Errorf("the query of the URL was lost: %s", lines[1])
	}
}

// TestClusterGet: cluster-get signs its request with the cluster key.
func TestClusterGet(t *testing.T) {
	v := &clusterauth.Verifier{Keys: clusterauth.NewKeys([]byte("k"))}
	srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("listing\n"))
	})))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"cluster-get", "--cluster-secret", "k", srv.URL + "/internal/v1/owner-sets"}, &out, &errb); code != 0 || out.String() != "listing\n" {
		t.Fatalf("exit %d, %q %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"cluster-get", "--cluster-secret", "wrong", srv.URL + "/x"}, &out, &errb); code == 0 {
		t.Fatal("a wrong secret passed")
	}
}

// TestHelpOnStdout: a help the user asked for is the command's output: every
// command prints its usage with its flags to stdout, nothing to stderr, and
// exits 0; --version names the build.
func TestHelpOnStdout(t *testing.T) {
	for name := range commands() {
		for _, h := range []string{"--help", "-h"} {
			var out, errb bytes.Buffer
			code := Main(context.Background(), []string{name, h}, &out, &errb)
			if code != 0 || !strings.Contains(out.String(), "Usage: sluice "+name) || errb.Len() != 0 {
				t.Errorf("sluice %s %s: exit %d, stdout %q, stderr %q; want exit 0 and the usage on stdout only", name, h, code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), "\n  -") {
				t.Errorf("sluice %s %s lists no flags:\n%s", name, h, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"archive", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-from string") || !strings.Contains(out.String(), "-server string") {
		t.Errorf("archive --help: exit %d, %q; want its flags", code, out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "sender-load") {
		t.Errorf("--help: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"--version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "sluice ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Errorf("--version: exit %d, %q; want the module version and %s", code, out.String(), runtime.Version())
	}
}

// TestImportOutput: an import whose stderr is not a terminal draws no
// progress bar, and it ends with the URLs that play the asset.
func TestImportOutput(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"import", "--data", t.TempDir(), "--server", "http://h:9/",
		"../../testdata/sample/sample.mp4", "movies/one"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(errb.String(), "\r") || strings.Contains(errb.String(), "%|") {
		t.Errorf("a progress bar went to a non-terminal stderr: %q", errb.String())
	}
	for _, want := range []string{
		"http://h:9/movies/one.isml/manifest.mpd", "http://h:9/movies/one.isml/master.m3u8",
		"http://h:9/movies/one.isml/Manifest", "http://h:9/s/movies/one/manifest.mpd",
	} {
		if !strings.Contains(out.String(), want+"\n") && !strings.Contains(out.String(), want+" ") {
			t.Errorf("import output does not list %s:\n%s", want, out.String())
		}
	}
}
