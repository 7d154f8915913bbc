package scheduler

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sluice-media/sluice/internal/store"
)

// TestParsePathMatchesSplit: parsePath (which does not split the path)
// parses every path as the straightforward split-and-join parser it
// replaced does, over generated paths of point names, sessions, tracks,
// file names and stray slashes.
func TestParsePathMatchesSplit(t *testing.T) {
	parts := []string{"live", "a", "b.c", "~abc", "~", "manifest.mpd", "master.m3u8", "steering.json",
		"media.m3u8", "rel.m3u8", "video_1000", "", "x y", "..", "~ab/cd"}
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/s/", "/s", "/x/live/master.m3u8", "/s/live/~abc", "/s/live/~abc/", "/s//master.m3u8"}
	for range 40000 {
		n := 1 + rng.IntN(5)
		segs := make([]string, n)
		for i := range segs {
			segs[i] = parts[rng.IntN(len(parts))]
		}
		paths = append(paths, "/s/"+strings.Join(segs, "/"))
	}
	for _, p := range paths {
		got, gerr := parsePath(p)
		want, werr := parsePathSplit(p)
		if (gerr == nil) != (werr == nil) || (gerr == nil && got != want) {
			t.Fatalf("%q: got %+v, %v; want %+v, %v", p, got, gerr, want, werr)
		}
	}
}

// parsePathSplit is the parser parsePath replaced.
func parsePathSplit(p string) (request, error) {
	rest, ok := strings.CutPrefix(p, Prefix)
	if !ok {
		return request{}, errors.New("not a scheduler URL")
	}
	segs := strings.Split(rest, "/")
	var r request
	i := 0
	for i < len(segs) && !strings.HasPrefix(segs[i], "~") && !isManifestFile(segs[i]) {
		i++
	}
	r.point = strings.Join(segs[:i], "/")
	if !store.ValidPointName(r.point) {
		return r, errors.New("malformed publishing point name")
	}
	if i < len(segs) && strings.HasPrefix(segs[i], "~") {
		r.session = segs[i][1:]
		i++
	}
	switch tail := segs[i:]; {
	case len(tail) == 1 && (tail[0] == "manifest.mpd" || tail[0] == "master.m3u8"):
		r.file = tail[0]
	case len(tail) == 1 && tail[0] == "steering.json" && r.session != "":
		r.file = tail[0]
	case len(tail) == 2 && (tail[1] == "media.m3u8" || tail[1] == "rel.m3u8") && r.session != "" && store.ValidID(tail[0]):
		r.file, r.track = tail[1], tail[0]
	default:
		return r, errors.New("unknown resource: want manifest.mpd, master.m3u8, ~<session>/steering.json or ~<session>/<track>/media.m3u8")
	}
	return r, nil
}
