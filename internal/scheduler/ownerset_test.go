package scheduler

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
)

func TestParseOwnerSetURL(t *testing.T) {
	for _, c := range []struct {
		tpl, base, err string
	}{
		{tpl: "http://{owners}.senders.example:9001", base: "http://a--b.senders.example:9001"},
		{tpl: "https://o-{owners}.Senders.Example/", base: "https://o-a--b.senders.example"},
		{tpl: "http://{owners}", base: "http://a--b"},
		{tpl: "ftp://{owners}.x", err: "http:// or https://"},
		{tpl: "{owners}.x:80", err: "http:// or https://"},
		{tpl: "http://x.example:9001", err: "exactly once"},
		{tpl: "http://{owners}.{owners}.x", err: "exactly once"},
		{tpl: "http://x.example:9001/{owners}", err: "only a host and a port"},
		{tpl: "http://{owners}.x/path", err: "only a host and a port"},
		{tpl: "http://{owners}.x?q=1", err: "only a host and a port"},
		{tpl: "http://u@{owners}.x", err: "only a host and a port"},
		{tpl: "http://{owners}.x:0", err: "port"},
		{tpl: "http://{owners}.x:http", err: "port"},
		{tpl: "http://{owners}_x.example", err: "letters, digits"},
	} {
		tp, err := parseOwnerSetURL(c.tpl)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one with %q", c.tpl, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.tpl, err)
			continue
		}
		if got := tp.base([]string{"a", "b"}); got != c.base {
			t.Errorf("%q: base %q, want %q", c.tpl, got, c.base)
		}
	}
}

func TestOwnerSetHostsListing(t *testing.T) {
	tp, err := parseOwnerSetURL("http://{owners}.senders.test:9001")
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{"s0": "127.0.0.11", "s1": "127.0.0.12", "s2": "127.0.0.13", "s3": "127.0.0.14"}
	for _, c := range []struct {
		name string
		ids  []string
		r    int
	}{
		{"3x2", []string{"s2", "s0", "s1"}, 2},
		{"4x3", []string{"s0", "s1", "s2", "s3"}, 3},
		{"1x2", []string{"s1"}, 2},
	} {
		var buf bytes.Buffer
		if err := writeOwnerSetHosts(&buf, tp, c.ids, addrs, c.r); err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "ownersets-"+c.name+".hosts")
		if os.Getenv("UPDATE_GOLDEN") != "" {
			os.WriteFile(golden, buf.Bytes(), 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if buf.String() != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", c.name, buf.String(), want)
		}
	}
}

// TestOwnerSetURLs: with an owner-set template, every segment and header
// URL names the owner set of its block, the scheduler's chosen sender
// first, and the listing resolves each name to exactly those owners.
func TestOwnerSetURLs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.OwnerSetURL = "http://{owners}.senders.test:9001"
	c := newTestCluster(t, cfg, 3, -1, testView("live", 30, false), testView("vod", 10, true))

	// The listing needs a request signed with the cluster key.
	rec := newRecorder()
	c.s.OwnerSetHosts(rec, mustReq(t, "/internal/v1/owner-sets"))
	if rec.code != http.StatusUnauthorized {
		t.Fatalf("unsigned listing: %d", rec.code)
	}
	req := mustReq(t, "/internal/v1/owner-sets")
	clusterauth.NewKeys(testSecret).Sign(req, time.Now())
	rec = newRecorder()
	c.s.OwnerSetHosts(rec, req)
	if rec.code != 200 {
		t.Fatalf("listing: %d %s", rec.code, rec.body.String())
	}
	// The fake senders share 127.0.0.1: a name's members are read from
	// its label, and the listing must give one address per member.
	resolve := map[string][]string{} // name -> sender IDs, in order
	for _, line := range strings.Split(rec.body.String(), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		if f[0] != "127.0.0.1" {
			t.Errorf("listing line %q: not a sender's address", line)
		}
		label, _, _ := strings.Cut(f[1], ".")
		ids := strings.Split(label, "--")
		resolve[f[1]] = append(resolve[f[1]], ids[len(resolve[f[1]])%len(ids)])
	}
	if len(resolve) != 6 {
		t.Errorf("%d names listed for 3 senders and R=2, want 6", len(resolve))
	}
	ids := []string{"s0", "s1", "s2"}
	check := func(u string) {
		t.Helper()
		host, b := blockOf(t, u)
		name, port, _ := strings.Cut(host, ":")
		if port != "9001" || !strings.HasSuffix(name, ".senders.test") {
			t.Fatalf("segment URL %s: not on the template's host and port", u)
		}
		got := resolve[name]
		owners := cluster.Owners(b.Key(), ids, 2)
		if len(got) != 2 || !slices.Contains(owners, got[0]) || !slices.Contains(owners, got[1]) || got[0] == got[1] {
			t.Errorf("%s: %s resolves to %v, want the owners %v", b, name, got, owners)
		}
	}
	_, pls := openHLS(t, c, "live", "")
	for _, pl := range pls {
		_, body := c.get(pl)
		for _, u := range mediaURIs(body) {
			check(u)
		}
		init := regexp.MustCompile(`#EXT-X-MAP:URI="http://([^/"]+)/b/`).FindStringSubmatch(body)
		if init == nil {
			t.Fatalf("no header URL in\n%s", body)
		}
		if name, _, _ := strings.Cut(init[1], ":"); len(resolve[name]) != 2 {
			t.Errorf("header host %s resolves to %v", init[1], resolve[name])
		}
	}
	code, mpd := c.get("/s/vod/manifest.mpd")
	if code != 200 {
		t.Fatalf("vod MPD: %d", code)
	}
	segs := regexp.MustCompile(`media="(http://[^"]+\.m4s)"`).FindAllStringSubmatch(mpd, -1)
	if len(segs) == 0 {
		t.Fatalf("no SegmentURLs in\n%s", mpd)
	}
	for _, m := range segs {
		check(m[1])
	}

	// The DNS answers: every live member in the name's order.
	if c.s.Zone() != "senders.test" {
		t.Errorf("zone %q", c.s.Zone())
	}
	for _, l := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"s2--s0.senders.test", 2, true},
		{"s1.senders.test", 1, true},
		{"s0--s1--s2.senders.test", 0, false}, // more than R
		{"s0--s9.senders.test", 1, true},      // s9 unknown (or gone)
		{"s0--s0.senders.test", 0, false},     // twice the same
		{"s0--s1.other.test", 0, false},
		{"h0123456789abcdef0123.senders.test", 0, false},
	} {
		as, ok := c.s.LookupOwnerSet(l.name)
		if ok != l.ok || len(as) != l.n {
			t.Errorf("lookup %s: %v %v, want %d addresses, %v", l.name, as, ok, l.n, l.ok)
		}
	}

	// A dead sender leaves the owner sets of the next manifests.
	c.sender("s2").srv.Close()
	eventually(t, "s2 out of the live set", 2*time.Second, func() bool { return len(c.s.LiveSenders()) == 2 })
	// and the DNS answers of its names.
	if as, ok := c.s.LookupOwnerSet("s2--s0.senders.test"); !ok || len(as) != 1 {
		t.Errorf("lookup after s2 died: %v %v, want s0's address only", as, ok)
	}
	_, pls = openHLS(t, c, "live", "")
	for _, pl := range pls {
		_, body := c.get(pl)
		for _, u := range mediaURIs(body) {
			host, _ := blockOf(t, u)
			if !strings.HasPrefix(host, "s0--s1.") && !strings.HasPrefix(host, "s1--s0.") {
				t.Errorf("after s2 died: %s", u)
			}
		}
	}
}
