package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// TrackInfo describes one track of an ingested stream: what a manifest needs
// to announce it and what a player needs to decode it.
type TrackInfo struct {
	TrackID          uint32 `json:"track_id"`
	Kind             string `json:"kind"` // video, audio or text
	Timescale        uint32 `json:"timescale"`
	SampleEntry      string `json:"sample_entry"`           // avc1, avc3, mp4a, ...
	Codec            string `json:"codec"`                  // RFC 6381 codecs value, e.g. avc1.64001E
	FourCC           string `json:"fourcc"`                 // Smooth Streaming FourCC, e.g. H264, AACL
	CodecPrivateData string `json:"codec_private_data"`     // Smooth CodecPrivateData (hex)
	Bitrate          int    `json:"bitrate"`                // bits per second (declared)
	Width            int    `json:"width,omitempty"`        // video
	Height           int    `json:"height,omitempty"`       // video
	SampleRate       int    `json:"sample_rate,omitempty"`  // audio
	Channels         int    `json:"channels,omitempty"`     // audio
	ChannelMask      string `json:"channel_mask,omitempty"` // AC-3/E-AC-3: Dolby channel mask, 4 hex digits (DolbyChannelScheme)
	JOC              int    `json:"joc,omitempty"`          // E-AC-3 with Joint Object Coding (Dolby Atmos): dec3's complexity index (ETSI TS 103 420), 0 without
	VideoRange       string `json:"video_range,omitempty"`  // SDR, PQ or HLG when the stream signals its transfer characteristics
	BitsPerSample    int    `json:"bits_per_sample,omitempty"`
	Language         string `json:"language,omitempty"`
	Role             string `json:"role,omitempty"` // DASH role (urn:mpeg:dash:role:2011) from the trak's kind box: subtitle, caption, ...
	Name             string `json:"name"`           // Smooth StreamIndex name (trackName)
	// Captions are the closed captions a video track carries in its SEI,
	// comma-separated (a string keeps TrackInfo comparable): CEA-608
	// channels CC1-CC4 and CEA-708 services SERVICEn (see CaptionScan),
	// found in its first fragments after the header; "" when none were
	// found. CaptionList splits them.
	Captions   string `json:"captions,omitempty"`
	ConfigHash string `json:"config_hash"` // digest of the sample description: a change is a new codec configuration
}

// CaptionList returns the track's Captions as a list (nil for none).
func (ti TrackInfo) CaptionList() []string {
	if ti.Captions == "" {
		return nil
	}
	return strings.Split(ti.Captions, ",")
}

// Header is the parsed stream header of an ingest body: ftyp, the optional
// Smooth live server manifest, and moov.
type Header struct {
	Ftyp   []byte
	Smil   []byte // LiveServerManifestBox, raw box; nil for CMAF
	Moov   []byte
	Tracks []TrackInfo
	moov   *mp4.MoovBox
}

// Raw returns the header bytes as they were received (ftyp, manifest box, moov).
func (h *Header) Raw() []byte {
	out := make([]byte, 0, len(h.Ftyp)+len(h.Smil)+len(h.Moov))
	out = append(out, h.Ftyp...)
	out = append(out, h.Smil...)
	return append(out, h.Moov...)
}

// Track returns the description of the track with the given track_ID.
func (h *Header) Track(id uint32) (TrackInfo, bool) {
	for _, t := range h.Tracks {
		if t.TrackID == id {
			return t, true
		}
	}
	return TrackInfo{}, false
}

func decodeBox(raw []byte) (mp4.Box, error) {
	return mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(raw))
}

// ParseHeader decodes a stream header. smil may be nil.
func ParseHeader(ftyp, smil, moov []byte) (*Header, error) {
	b, err := decodeBox(moov)
	if err != nil {
		return nil, fmt.Errorf("decode moov: %w", err)
	}
	mv, ok := b.(*mp4.MoovBox)
	if !ok {
		return nil, fmt.Errorf("expected moov, got %s", b.Type())
	}
	if len(mv.Traks) == 0 {
		return nil, fmt.Errorf("moov has no track")
	}
	var sm map[uint32]SmilTrack
	if smil != nil {
		sm, err = ParseLiveServerManifest(smil)
		if err != nil {
			return nil, err
		}
	}
	h := &Header{Ftyp: ftyp, Smil: smil, Moov: moov, moov: mv}
	for _, tr := range mv.Traks {
		ti, err := describeTrak(tr)
		if err != nil {
			return nil, err
		}
		if s, ok := sm[ti.TrackID]; ok {
			s.apply(&ti)
		}
		if ti.Name == "" {
			ti.Name = ti.Kind
			if ti.Kind == "text" && ti.Role != "" && ti.Role != "subtitle" {
				// Captions and subtitles of one language are tracks of
				// their own (store.TrackID: name, language, bitrate).
				ti.Name += "-" + ti.Role
			}
		}
		h.Tracks = append(h.Tracks, ti)
	}
	return h, nil
}

// DescribeTrak describes one trak as ParseHeader does (kind, codec string,
// FourCC, size, channels, ...), without the SMIL parameters. An audio or
// video sample entry Sluice does not serve gives an error wrapping
// ErrUnsupported.
func DescribeTrak(tr *mp4.TrakBox) (TrackInfo, error) { return describeTrak(tr) }

func describeTrak(tr *mp4.TrakBox) (TrackInfo, error) {
	var ti TrackInfo
	if tr.Tkhd == nil || tr.Mdia == nil || tr.Mdia.Mdhd == nil || tr.Mdia.Hdlr == nil ||
		tr.Mdia.Minf == nil || tr.Mdia.Minf.Stbl == nil || tr.Mdia.Minf.Stbl.Stsd == nil {
		return ti, fmt.Errorf("trak is missing tkhd, mdhd, hdlr or stsd")
	}
	ti.TrackID = tr.Tkhd.TrackID
	ti.Timescale = tr.Mdia.Mdhd.Timescale
	if ti.Timescale == 0 {
		return ti, fmt.Errorf("track %d has timescale 0", ti.TrackID)
	}
	ti.Language = tr.Mdia.Mdhd.GetLanguage()
	if ti.Language == "und" {
		ti.Language = ""
	}
	if e := tr.Mdia.Elng; e != nil && e.Language != "" && e.Language != "und" {
		ti.Language = e.Language // BCP 47, more precise than mdhd's ISO 639-2
	}
	ti.Role = kindRole(tr)
	stsd := tr.Mdia.Minf.Stbl.Stsd
	var buf bytes.Buffer
	if err := stsd.Encode(&buf); err != nil {
		return ti, fmt.Errorf("encode stsd: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	ti.ConfigHash = hex.EncodeToString(sum[:12])
	switch tr.Mdia.Hdlr.HandlerType {
	case "vide":
		ti.Kind = "video"
	case "soun":
		ti.Kind = "audio"
	case "text", "subt", "sbtl", "meta":
		ti.Kind = "text"
	default:
		return ti, fmt.Errorf("track %d: unsupported handler %q: %w", ti.TrackID, printable(tr.Mdia.Hdlr.HandlerType), ErrUnsupported)
	}
	if len(stsd.Children) == 0 {
		return ti, fmt.Errorf("track %d: empty sample description", ti.TrackID)
	}
	ti.SampleEntry = stsd.Children[0].Type()
	ti.Codec = ti.SampleEntry
	switch {
	case stsd.AvcX != nil:
		se := stsd.AvcX
		ti.Width, ti.Height = int(se.Width), int(se.Height)
		ti.FourCC = "H264"
		if se.AvcC != nil && len(se.AvcC.SPSnalus) > 0 {
			sps := se.AvcC.SPSnalus[0]
			if len(sps) >= 4 {
				ti.Codec = fmt.Sprintf("%s.%02X%02X%02X", ti.SampleEntry, sps[1], sps[2], sps[3])
			}
			var cpd []byte
			for _, n := range se.AvcC.SPSnalus {
				cpd = append(append(cpd, 0, 0, 0, 1), n...)
			}
			for _, n := range se.AvcC.PPSnalus {
				cpd = append(append(cpd, 0, 0, 0, 1), n...)
			}
			ti.CodecPrivateData = strings.ToUpper(hex.EncodeToString(cpd))
		}
		if se.Btrt != nil {
			ti.Bitrate = int(se.Btrt.AvgBitrate)
		}
	case stsd.HvcX != nil && (ti.SampleEntry == "hvc1" || ti.SampleEntry == "hev1"):
		if err := describeHEVC(&ti, stsd.HvcX); err != nil {
			return ti, err
		}
	case stsd.Av01 != nil:
		if err := describeAV1(&ti, stsd.Av01); err != nil {
			return ti, err
		}
	case stsd.Opus != nil || stsd.AC3 != nil || stsd.EC3 != nil:
		se := stsd.Opus
		if se == nil {
			se = stsd.AC3
		}
		if se == nil {
			se = stsd.EC3
		}
		if err := describeAudio(&ti, se); err != nil {
			return ti, err
		}
	case stsd.Mp4a != nil:
		se := stsd.Mp4a
		ti.SampleRate = int(se.SampleRate)
		ti.Channels = int(se.ChannelCount)
		ti.BitsPerSample = int(se.SampleSize)
		ti.FourCC = "AACL"
		if se.Esds != nil && se.Esds.DecConfigDescriptor != nil {
			dcd := se.Esds.DecConfigDescriptor
			if ti.Bitrate == 0 {
				ti.Bitrate = int(dcd.AvgBitrate)
			}
			if dcd.DecSpecificInfo != nil && len(dcd.DecSpecificInfo.DecConfig) > 0 {
				asc := dcd.DecSpecificInfo.DecConfig
				ti.CodecPrivateData = strings.ToUpper(hex.EncodeToString(asc))
				aot := asc[0] >> 3
				if aot == 5 || aot == 29 {
					ti.FourCC = "AACH"
				}
				ti.Codec = fmt.Sprintf("mp4a.40.%d", aot)
			} else {
				ti.Codec = "mp4a.40.2"
			}
		}
		if se.Btrt != nil && se.Btrt.AvgBitrate > 0 {
			ti.Bitrate = int(se.Btrt.AvgBitrate)
		}
	case stsd.Wvtt != nil:
		ti.Codec, ti.FourCC = "wvtt", "WVTT"
		if se := stsd.Wvtt; se.Btrt != nil {
			ti.Bitrate = int(se.Btrt.AvgBitrate)
		}
	case stsd.Stpp != nil:
		se := stsd.Stpp
		// IMSC1 (ISO/IEC 14496-30, DASH-IF): the text profile unless the
		// sample entry names the image profile.
		ti.Codec, ti.FourCC = "stpp.ttml.im1t", "TTML"
		if strings.Contains(se.Namespace+" "+se.SchemaLocation, "im1i") {
			ti.Codec = "stpp.ttml.im1i"
		}
		if se.Btrt != nil {
			ti.Bitrate = int(se.Btrt.AvgBitrate)
		}
	default:
		if ti.Kind != "text" {
			return ti, fmt.Errorf("track %d: %s sample entry %q; supported are %s: %w",
				ti.TrackID, ti.Kind, printable(ti.SampleEntry), strings.Join(supportedSampleEntries, ", "), ErrUnsupported)
		}
	}
	return ti, nil
}

// kindRole returns the value of the trak's first kind box of the DASH role
// scheme (urn:mpeg:dash:role:2011), or "".
func kindRole(tr *mp4.TrakBox) string {
	if tr.Udta == nil {
		return ""
	}
	for _, c := range tr.Udta.Children {
		if k, ok := c.(*mp4.KindBox); ok && k.SchemeURI == "urn:mpeg:dash:role:2011" && k.Value != "" {
			return k.Value
		}
	}
	return ""
}

// TrackInit builds a single-track CMAF header (ftyp + moov) for the track
// with the given track_ID, keeping its trak and trex as received except
// for the track_ID, which becomes the track's SwitchingSetTrackID (in
// tkhd, trex and mvhd's next_track_ID), as its stored fragments say (see
// Moof.Normalize).
func (h *Header) TrackInit(trackID uint32) ([]byte, error) {
	var trak *mp4.TrakBox
	for _, t := range h.moov.Traks {
		if t.Tkhd.TrackID == trackID {
			trak = t
		}
	}
	ti, ok := h.Track(trackID)
	if trak == nil || !ok {
		return nil, fmt.Errorf("no track %d in moov", trackID)
	}
	stored := SwitchingSetTrackID(ti)
	// A copy: the header's own trak keeps its track_ID.
	var tb bytes.Buffer
	if err := trak.Encode(&tb); err != nil {
		return nil, fmt.Errorf("encode trak: %w", err)
	}
	b, err := decodeBox(tb.Bytes())
	if err != nil {
		return nil, fmt.Errorf("copy trak: %w", err)
	}
	trak = b.(*mp4.TrakBox)
	trak.Tkhd.TrackID = stored
	moov := mp4.NewMoovBox()
	if h.moov.Mvhd != nil {
		mvhd := *h.moov.Mvhd
		mvhd.NextTrackID = stored + 1
		moov.AddChild(&mvhd)
	} else {
		moov.AddChild(mp4.CreateMvhd())
	}
	moov.AddChild(trak)
	mvex := mp4.NewMvexBox()
	trex := &mp4.TrexBox{DefaultSampleDescriptionIndex: 1}
	if h.moov.Mvex != nil {
		for _, t := range h.moov.Mvex.Trexs {
			if t.TrackID == trackID {
				c := *t
				trex = &c
			}
		}
	}
	trex.TrackID = stored
	mvex.AddChild(trex)
	moov.AddChild(mvex)
	for _, p := range h.moov.Psshs {
		moov.AddChild(p)
	}
	ftyp := mp4.NewFtyp("iso6", 0, []string{"iso6", "cmfc", "isom", "mp41", "dash"})
	var buf bytes.Buffer
	if err := ftyp.Encode(&buf); err != nil {
		return nil, err
	}
	if err := moov.Encode(&buf); err != nil {
		return nil, fmt.Errorf("encode moov: %w", err)
	}
	return buf.Bytes(), nil
}

// StoredTrex returns the defaults of a stored single-track header's track
// (what TrackInit wrote): the trex of the track's stored track_ID, else —
// a header stored before the switching-set track_IDs — of its own.
func (h *Header) StoredTrex(ti TrackInfo) *mp4.TrexBox {
	if t := h.Trex(SwitchingSetTrackID(ti)); t != nil {
		return t
	}
	return h.Trex(ti.TrackID)
}

// Trex returns the track-extends defaults for a track, or nil.
func (h *Header) Trex(trackID uint32) *mp4.TrexBox {
	if h.moov.Mvex == nil {
		return nil
	}
	for _, t := range h.moov.Mvex.Trexs {
		if t.TrackID == trackID {
			return t
		}
	}
	return nil
}
