package server

import (
	"net/http/httptest"
	"testing"
)

// TestKindOf: the request kinds of the metrics, and which ones the pacer
// paces (LL-HLS parts and fragments in progress are media like fragments:
// CMCD rtp applies to them).
func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		method, path string
		kind         kind
		media        bool
	}{
		{"GET", "/live.isml/tracks/video_1/123.m4s", kindFragment, true},
		{"GET", "/live.isml/tracks/video_1/part-123.m4s", kindPart, true},
		{"GET", "/live.isml/tracks/video_1/init.mp4", kindInit, true},
		{"GET", "/live.isml/QualityLevels(1)/Fragments(video=1)", kindFragment, true},
		{"GET", "/live.isml/tracks/video_1/media.m3u8?_HLS_msn=3&_HLS_part=1", kindManifest, false},
		{"GET", "/live.isml/manifest.mpd", kindManifest, false},
		{"POST", "/live.isml/Streams(live)", kindIngest, false},
		{"GET", "/live.isml/Streams(live)", kindPull, false},
		{"GET", "/metrics", kindOther, false},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		if k := kindOf(r); k != c.kind || isMedia(r) != c.media {
			t.Errorf("%s %s: kind %s media %v, want %s %v", c.method, c.path, kindNames[k], isMedia(r), kindNames[c.kind], c.media)
		}
	}
}
