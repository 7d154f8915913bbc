package scheduler

import (
	"testing"

	"github.com/sluice-media/sluice/internal/membership"
)

func TestPlayerURL(t *testing.T) {
	for _, bad := range []string{"", "https://sender:8443", "ftp://{host}", "https://{host}.x:8443/?a=1", "https://u@{host}", "{host}:8443"} {
		if _, err := PlayerURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	f, err := PlayerURL("https://{host}:8443/")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"http://10.0.0.1:9001":    "https://10.0.0.1:8443",
		"http://s1.example:9001/": "https://s1.example:8443",
		"http://[::1]:9001":       "https://[::1]:8443",
		"not a url\x7f":           "not a url\x7f",
	} {
		if got := f(membership.Member{ID: "x", URL: in}); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
