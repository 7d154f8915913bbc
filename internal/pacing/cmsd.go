package pacing

import "github.com/sluice-media/sluice/internal/sfv"

// ObjectType maps a track kind (video, audio, text) to the CMCD/CMSD
// object type token: v, a, tt; o for anything else.
func ObjectType(kind string) string {
	switch kind {
	case "video":
		return "v"
	case "audio":
		return "a"
	case "text":
		return "tt"
	}
	return "o"
}

// StaticHeader is the CMSD-Static value (CTA-5006, an sf-dictionary that
// may be cached with the object) of a media object: its encoded bitrate
// (br, kbit/s), its duration (d, ms; omitted when dur or timescale is 0)
// and its object type (ot: v, a, tt, i for an init segment).
func StaticHeader(ot string, bitrate int, dur uint64, timescale uint32) string {
	b := make([]byte, 0, 48)
	if bitrate > 0 {
		b = append(b, "br="...)
		b = sfv.AppendInt(b, int64((bitrate+500)/1000))
		b = append(b, ',')
	}
	if dur > 0 && timescale > 0 {
		b = append(b, "d="...)
		b = sfv.AppendInt(b, int64(dur*1000/uint64(timescale)))
		b = append(b, ',')
	}
	b = append(b, "ot="...)
	b = append(b, ot...)
	return string(b)
}
