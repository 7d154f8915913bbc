package manifest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit/mpdschema"
)

// captionsView: vodView whose video carries CEA-608 CC1 and CC3 and
// CEA-708 service 1 in its SEI (the 800 kb/s rendition CC1 only), the
// video track's language English.
func captionsView() store.View {
	v := vodView()
	v.Name = "captions"
	for i := range v.Tracks {
		ti := &v.Tracks[i].Info
		switch v.Tracks[i].ID {
		case "video_2000000":
			ti.Captions, ti.Language = "CC1,CC3,SERVICE1", "eng"
		case "video_800000":
			ti.Captions = "CC1"
		}
	}
	return v
}

// TestCaptionSignalling: closed captions in the video are signalled in
// DASH as SCTE 214-1 Accessibility descriptors on the video AdaptationSet
// and in HLS as a CLOSED-CAPTIONS group named on the video variants; a
// video without captions has neither, and the Smooth manifest says
// nothing of them. Golden files: testdata/captions.*.
func TestCaptionSignalling(t *testing.T) {
	o := Options{Now: anchor.Add(1016 * time.Second)}
	for _, tc := range []struct {
		name      string
		view      store.View
		acc       []string // scheme value
		media     []string // the EXT-X-MEDIA lines of the captions
		variantCC string
	}{
		{"captions", captionsView(),
			[]string{CEA608Scheme + " CC1=eng;CC3=eng", CEA708Scheme + " 1=lang:eng"},
			[]string{
				`#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="eng CC1",LANGUAGE="eng",DEFAULT=NO,AUTOSELECT=YES,INSTREAM-ID="CC1"`,
				`#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="eng CC3",LANGUAGE="eng",DEFAULT=NO,AUTOSELECT=YES,INSTREAM-ID="CC3"`,
				`#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="eng SERVICE1",LANGUAGE="eng",DEFAULT=NO,AUTOSELECT=YES,INSTREAM-ID="SERVICE1"`,
			}, "cc"},
		{"no language", func() store.View {
			v := captionsView()
			for i := range v.Tracks {
				v.Tracks[i].Info.Language = ""
				if v.Tracks[i].Info.Kind == "video" {
					v.Tracks[i].Info.Captions = "CC1"
				}
			}
			return v
		}(), []string{CEA608Scheme + " CC1=und"},
			[]string{`#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",DEFAULT=NO,AUTOSELECT=YES,INSTREAM-ID="CC1"`}, "cc"},
		{"none", vodView(), nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := DASH(tc.view, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := mpdschema.Check(b); err != nil {
				t.Errorf("mpd schema: %v\n%s", err, b)
			}
			m, err := mpd.ReadFromString(string(b))
			if err != nil {
				t.Fatal(err)
			}
			var acc []string
			for _, as := range m.Periods[0].AdaptationSets {
				for _, a := range as.Accessibilities {
					if as.ContentType != "video" {
						t.Errorf("Accessibility on a %s AdaptationSet", as.ContentType)
					}
					acc = append(acc, string(a.SchemeIdUri)+" "+a.Value)
				}
			}
			if strings.Join(acc, "\n") != strings.Join(tc.acc, "\n") {
				t.Errorf("dash accessibility %q, want %q", acc, tc.acc)
			}

			b, err = HLSMaster(tc.view, o)
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
			if err != nil {
				t.Fatalf("hls master: %v\n%s", err, b)
			}
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "TYPE=CLOSED-CAPTIONS") {
					lines = append(lines, l)
				}
			}
			if strings.Join(lines, "\n") != strings.Join(tc.media, "\n") {
				t.Errorf("hls closed captions\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(tc.media, "\n"))
			}
			for _, vr := range p.(*m3u8.MasterPlaylist).Variants {
				if vr.Captions != tc.variantCC {
					t.Errorf("variant %s: CLOSED-CAPTIONS %q, want %q", vr.URI, vr.Captions, tc.variantCC)
				}
			}

			b, err = Smooth(tc.view, o)
			if err != nil {
				t.Fatal(err)
			}
			if s := string(b); strings.Contains(s, "CC1") || strings.Contains(s, "608") {
				t.Errorf("smooth manifest mentions captions:\n%s", s)
			}
		})
	}
}
