package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/cluster"
)

func TestParseBlock(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want cluster.BlockID
		ok   bool
	}{
		{"frag200k-1/video_800000/20000000.m4s", cluster.BlockID{Point: "frag200k-1", Track: "video_800000", Start: 20000000}, true},
		{"/movies/demo/audio_128000/0.m4s", cluster.BlockID{Point: "movies/demo", Track: "audio_128000", Start: 0}, true},
		{"video/0.m4s", cluster.BlockID{}, false},           // no point
		{"p/video/0.mp4", cluster.BlockID{}, false},         // not a fragment
		{"p/video/x.m4s", cluster.BlockID{}, false},         // start not a number
		{"p/video/init.mp4", cluster.BlockID{}, false},      // a header, not a block
		{"/video_1/20000000.m4s", cluster.BlockID{}, false}, // empty point
	} {
		got, err := parseBlock(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseBlock(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// The printed URLs carry tokens the sender accepts for exactly their block's point.
func TestPrintURLs(t *testing.T) {
	secret := []byte("s3cret")
	ids := []cluster.BlockID{{Point: "a", Track: "v", Start: 0}, {Point: "b/c", Track: "v", Start: 2000}}
	var out bytes.Buffer
	if err := printURLs(&out, secret, "http://h:1", ids); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(ids) {
		t.Fatalf("%d lines for %d blocks:\n%s", len(lines), len(ids), out.String())
	}
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "http://h:1/b/")
		if !ok {
			t.Fatalf("line %d: %q", i, l)
		}
		tok, path, _ := strings.Cut(rest, "/")
		id, err := parseBlock(path)
		if err != nil || id != ids[i] {
			t.Errorf("line %d: path %q is %+v (%v), want %+v", i, path, id, err, ids[i])
		}
		if tk, err := cluster.Verify(secret, tok, ids[i]); err != nil || tk.Session != sessionFor(ids[i].Point) {
			t.Errorf("line %d: token refused: %v (%+v)", i, err, tk)
		}
		if _, err := cluster.Verify(secret, tok, ids[1-i]); err == nil {
			t.Errorf("line %d: token accepted for another block's point", i)
		}
	}
}
