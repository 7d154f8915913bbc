package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerFlags: peers and roles are checked before anything is served.
func TestPeerFlags(t *testing.T) {
	dir := t.TempDir()
	ingestCfg := filepath.Join(dir, "ingest.yaml")
	if err := os.WriteFile(ingestCfg, []byte("role: ingest\npoints: [{name: live}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badRole := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badRole, []byte("role: encoder\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"origin", "--ingest", "http://a:8080"}, "--ingest needs the points"},
		{[]string{"origin", "--point", "live", "--ingest", "ftp://a"}, "want an http(s) base URL"},
		{[]string{"ingest", "--standby", "b:8080"}, "want an http(s) base URL"},
		{[]string{"origin", "--config", ingestCfg}, `for role "ingest", not "origin"`},
		{[]string{"ingest", "--config", badRole}, `role "encoder"`},
		{[]string{"ingest", "--ingest", "http://a:8080"}, "flag provided but not defined: -ingest"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), c.args, &out, &errb)
		if code != 1 && code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: code %d, output %q; want an error with %q", c.args, code, errb.String(), c.want)
		}
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"ingest", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-standby") {
		t.Errorf("ingest --help does not show --standby on stdout: %s", out.String())
	}
	if code := Main(context.Background(), []string{"origin", "--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-ingest value") {
		t.Errorf("origin --help does not show --ingest on stdout: %s", out.String())
	}
}
