package urls

import "testing"

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		in, pp, rest string
		ok           bool
	}{
		{"/live.isml/Streams(a)", "live", "Streams(a)", true},
		{"/a/b/ch1.isml/Manifest", "a/b/ch1", "Manifest", true},
		{"/vod.ism/manifest.mpd", "vod", "manifest.mpd", true},
		{"/live.isml", "live", "", true},
		{"/.isml/x", "", "", false},
		{"/metrics", "", "", false},
	} {
		pp, rest, ok := Split(c.in)
		if pp != c.pp || rest != c.rest || ok != c.ok {
			t.Errorf("Split(%q) = %q %q %v, want %q %q %v", c.in, pp, rest, ok, c.pp, c.rest, c.ok)
		}
	}
}

func TestStream(t *testing.T) {
	for _, c := range []struct {
		in       string
		id       string
		start    int64
		hasStart bool
		ok       bool
	}{
		{"Streams(video-1.cmfv)", "video-1.cmfv", 0, false, true},
		{"Events(e1)/Streams(s)", "s", 0, false, true},
		{"Streams(s)/StartTime(-213333)", "s", -213333, true, true},
		{"Streams(s)/StartTime(x)", "", 0, false, false},
		{"Streams()", "", 0, false, false},
		{"Stream(s)", "", 0, false, false},
		{"Streams(s)/a/b", "", 0, false, false},
	} {
		id, st, hs, ok := Stream(c.in)
		if id != c.id || st != c.start || hs != c.hasStart || ok != c.ok {
			t.Errorf("Stream(%q) = %q %d %v %v", c.in, id, st, hs, ok)
		}
	}
}

func TestSmoothFragment(t *testing.T) {
	for _, c := range []struct {
		in   string
		br   int
		name string
		t    int64
		ok   bool
	}{
		{"QualityLevels(800000)/Fragments(video=20000000)", 800000, "video", 20000000, true},
		{"QualityLevels(128000,Lang=en)/Fragments(audio=5)", 128000, "audio", 5, true},
		{"QualityLevels(x)/Fragments(video=1)", 0, "", 0, false},
		{"QualityLevels(1)/Fragments(video=)", 0, "", 0, false},
		{"QualityLevels(1)/FragmentInfo(video=1)", 0, "", 0, false},
	} {
		br, name, ts, ok := SmoothFragment(c.in)
		if br != c.br || name != c.name || ts != c.t || ok != c.ok {
			t.Errorf("SmoothFragment(%q) = %d %q %d %v", c.in, br, name, ts, ok)
		}
	}
}
