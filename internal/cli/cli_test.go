package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
		{[]string{"ingest", "--help"}, 0, "-max-box int"},
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
