package manifest

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/sluice-media/sluice/internal/media"
	"github.com/sluice-media/sluice/internal/store"
)

// Closed captions in the video (media.TrackInfo.Captions: CEA-608 channels
// CC1-CC4 and CEA-708 services SERVICEn carried in the SEI) are signalled,
// not served: the player decodes them from the video samples.
//
//   - DASH: Accessibility descriptors on the video AdaptationSet (SCTE
//     214-1): urn:scte:dash:cc:cea-608:2015 with "CC1=eng;CC3=und", and
//     urn:scte:dash:cc:cea-708:2015 with "1=lang:eng;2=lang:und".
//   - HLS: a CLOSED-CAPTIONS group "cc" (per pathway "cc-<pathway>") with
//     one rendition per channel or service (INSTREAM-ID), named on every
//     video variant whose track carries captions.
//   - Smooth: nothing; a Smooth client decodes 608/708 from the video's
//     SEI on its own, and the manifest has no element for them.
//
// The language is the video track's (its mdhd or elng box, or the Smooth
// ingest's systemLanguage); the SEI does not say one, so without it DASH
// says "und" (undetermined) and HLS leaves LANGUAGE out.

// Accessibility schemes of closed captions in the video (SCTE 214-1).
const (
	CEA608Scheme = "urn:scte:dash:cc:cea-608:2015"
	CEA708Scheme = "urn:scte:dash:cc:cea-708:2015"
)

// videoCaptions is the union of the captions of video tracks.
func videoCaptions(ts []store.TrackView) (caps []string, lang string) {
	for _, t := range ts {
		if t.Info.Kind != "video" || t.Info.Captions == "" {
			continue
		}
		caps = media.MergeCaptions(caps, t.Info.CaptionList())
		if lang == "" {
			lang = t.Info.Language
		}
	}
	return caps, lang
}

// dashCaptions returns the Accessibility descriptors of the captions of a
// video AdaptationSet's tracks (none without captions).
func dashCaptions(ts []store.TrackView) []*mpd.DescriptorType {
	caps, lang := videoCaptions(ts)
	if len(caps) == 0 {
		return nil
	}
	if lang == "" {
		lang = "und"
	}
	var cea608, cea708 []string
	for _, c := range caps {
		if n, ok := strings.CutPrefix(c, "SERVICE"); ok {
			cea708 = append(cea708, n+"=lang:"+lang)
		} else {
			cea608 = append(cea608, c+"="+lang)
		}
	}
	var out []*mpd.DescriptorType
	if len(cea608) > 0 {
		out = append(out, mpd.NewDescriptor(CEA608Scheme, strings.Join(cea608, ";"), ""))
	}
	if len(cea708) > 0 {
		out = append(out, mpd.NewDescriptor(CEA708Scheme, strings.Join(cea708, ";"), ""))
	}
	return out
}

// writeCaptions writes the CLOSED-CAPTIONS group of one pathway's video
// tracks and returns the variant attribute that names it ("" without
// captions).
func writeCaptions(b *bytes.Buffer, video []store.TrackView, pw Pathway) string {
	caps, lang := videoCaptions(video)
	if len(caps) == 0 {
		return ""
	}
	group := "cc"
	if pw.ID != "" {
		group += "-" + pw.ID
	}
	for _, c := range caps {
		name := c
		if lang != "" {
			name = lang + " " + c
		}
		fmt.Fprintf(b, "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=%s,NAME=%s", quote(group), quote(name))
		if lang != "" {
			fmt.Fprintf(b, ",LANGUAGE=%s", quote(lang))
		}
		fmt.Fprintf(b, ",DEFAULT=NO,AUTOSELECT=YES,INSTREAM-ID=%s\n", quote(c))
	}
	return ",CLOSED-CAPTIONS=" + quote(group)
}
