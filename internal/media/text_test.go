package media

import (
	"bytes"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"
)

// TestTextTrackInfo: the text tracks DASH-IF and Smooth ingest send are
// described with their codec, language (elng before mdhd) and role (kind).
func TestTextTrackInfo(t *testing.T) {
	init := mp4.CreateEmptyInit()
	wvtt := init.AddEmptyTrack(1000, "wvtt", "pt-BR") // elng
	if err := wvtt.SetWvttDescriptor(""); err != nil {
		t.Fatal(err)
	}
	stpp := init.AddEmptyTrack(1000, "subtitle", "fra") // subt handler, mdhd language
	if err := stpp.SetStppDescriptor("http://www.w3.org/ns/ttml", "", ""); err != nil {
		t.Fatal(err)
	}
	udta := &mp4.UdtaBox{}
	udta.AddChild(&mp4.KindBox{SchemeURI: "urn:mpeg:dash:role:2011", Value: "caption"})
	stpp.AddChild(udta)
	var buf bytes.Buffer
	if err := init.Moov.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(nil, nil, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ kind, entry, codec, fourcc, lang, role, name string }{
		{"text", "wvtt", "wvtt", "WVTT", "pt-BR", "", "text"},
		{"text", "stpp", "stpp.ttml.im1t", "TTML", "fra", "caption", "text-caption"},
	}
	if len(h.Tracks) != len(want) {
		t.Fatalf("%d tracks", len(h.Tracks))
	}
	for i, w := range want {
		ti := h.Tracks[i]
		got := struct{ kind, entry, codec, fourcc, lang, role, name string }{ti.Kind, ti.SampleEntry, ti.Codec, ti.FourCC, ti.Language, ti.Role, ti.Name}
		if got != w {
			t.Errorf("track %d: %+v, want %+v", i, got, w)
		}
	}
}
