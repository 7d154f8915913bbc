package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDistributionAndArchiveArgs(t *testing.T) {
	dir := t.TempDir()
	wrongRole := filepath.Join(dir, "ingest.yaml")
	os.WriteFile(wrongRole, []byte("role: ingest\ndistribution:\n  origins: [http://o:1]\n"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"distribution", "--help"}, 0, "-origin value"},
		{[]string{"distribution"}, 1, "no origin"},
		{[]string{"distribution", "--origin", "ftp://x"}, 1, "want an http(s) base URL"},
		{[]string{"distribution", "--origin", "http://o:1", "--cache-size", "lots"}, 1, "-cache-size"},
		{[]string{"distribution", "--origin", "http://o:1", "--cache-size", "10"}, 1, "cache_bytes"},
		{[]string{"distribution", "--config", wrongRole}, 1, `for role "ingest"`},
		{[]string{"archive", "--help"}, 0, "Usage: sluice archive cut"},
		{[]string{"archive"}, 1, "want the subcommand cut"},
		{[]string{"archive", "cut", "ch"}, 1, "need a point and an asset name"},
		{[]string{"archive", "cut", "ch", "a", "--from", "1"}, 1, "need --from and --to"},
		{[]string{"archive", "cut", "ch", "a", "--from", "1", "--to", "2"}, 1, "exactly one of --data and --server"},
		{[]string{"archive", "cut", "nope", "a", "--from", "1", "--to", "2", "--data", dir}, 1, "not found"},
	} {
		var out, errb bytes.Buffer
		code := Main(context.Background(), c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%v: code %d, output %q; want %d and %q", c.args, code, out.String()+errb.String(), c.code, c.want)
		}
	}
}
