package media

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Video ranges (HLS VIDEO-RANGE), from the transfer characteristics
// (ITU-T H.273) a stream signals.
const (
	RangeSDR = "SDR"
	RangePQ  = "PQ"
	RangeHLG = "HLG"
)

// DolbyChannelScheme is the DASH AudioChannelConfiguration scheme of AC-3
// and E-AC-3 (ETSI TS 102 366 Annex I): its value is the channel mask as
// four upper-case hex digits (stereo A000, 5.1 F801).
const DolbyChannelScheme = "tag:dolby.com,2014:dash:audio_channel_configuration:2011"

// supportedSampleEntries are the audio and video sample entries Sluice
// ingests and announces; another one is refused with ErrUnsupported.
var supportedSampleEntries = []string{"avc1", "avc3", "hvc1", "hev1", "av01", "mp4a", "Opus", "ac-3", "ec-3"}

// SmoothCarries reports whether a Smooth Streaming manifest can announce the
// track: H.264, HEVC, AAC, AC-3, E-AC-3 and TTML. AV1 and Opus have no
// Smooth FourCC that a Smooth client knows, so they are left out of it.
func SmoothCarries(ti TrackInfo) bool {
	switch ti.SampleEntry {
	case "av01", "Opus":
		return false
	}
	return true
}

// videoRange maps transfer_characteristics (H.273) to an HLS VIDEO-RANGE:
// "" when the value says nothing (unspecified, reserved).
func videoRange(tc int) string {
	switch tc {
	case 1, 6, 13, 14, 15:
		return RangeSDR
	case 16:
		return RangePQ
	case 18:
		return RangeHLG
	}
	return ""
}

// colrTransfer returns the transfer characteristics of a sample entry's
// colr box of type nclx (or QuickTime nclc), or 0.
func colrTransfer(children []mp4.Box) int {
	for _, c := range children {
		if cb, ok := c.(*mp4.ColrBox); ok && (cb.ColorType == mp4.ColorTypeOnScreenColors || cb.ColorType == mp4.QuickTimeColorParameters) {
			return int(cb.TransferCharacteristics)
		}
	}
	return 0
}

// describeHEVC fills in an hvc1/hev1 track: the codecs value of ISO/IEC
// 14496-15 Annex E from hvcC (profile space and idc, the compatibility
// flags in reverse bit order, tier and level, the constraint bytes without
// the trailing zero ones), the Smooth FourCC and CodecPrivateData (the
// parameter sets in Annex B form, as for H.264), and the video range from
// the colr box, else the SPS's VUI.
func describeHEVC(ti *TrackInfo, se *mp4.VisualSampleEntryBox) error {
	ti.Width, ti.Height = int(se.Width), int(se.Height)
	ti.FourCC = strings.ToUpper(ti.SampleEntry)
	if se.Btrt != nil {
		ti.Bitrate = int(se.Btrt.AvgBitrate)
	}
	tc := colrTransfer(se.Children)
	if se.HvcC == nil {
		return fmt.Errorf("track %d: HEVC sample entry without hvcC: %w", ti.TrackID, ErrUnsupported)
	}
	{
		r := se.HvcC.DecConfRec
		ptl := hevc.ProfileTierLevel{
			GeneralProfileSpace:              r.GeneralProfileSpace,
			GeneralTierFlag:                  r.GeneralTierFlag,
			GeneralProfileIDC:                r.GeneralProfileIDC,
			GeneralProfileCompatibilityFlags: r.GeneralProfileCompatibilityFlags,
			GeneralConstraintIndicatorFlags:  r.GeneralConstraintIndicatorFlags,
			GeneralLevelIDC:                  r.GeneralLevelIDC,
		}
		ti.Codec = hevc.CodecString(ti.SampleEntry, &hevc.SPS{ProfileTierLevel: ptl})
		var cpd []byte
		for _, typ := range []hevc.NaluType{hevc.NALU_VPS, hevc.NALU_SPS, hevc.NALU_PPS} {
			for _, n := range naluArray(r, typ) {
				cpd = append(append(cpd, 0, 0, 0, 1), n...)
			}
		}
		ti.CodecPrivateData = strings.ToUpper(hex.EncodeToString(cpd))
		if sps := naluArray(r, hevc.NALU_SPS); tc == 0 && len(sps) > 0 {
			if p, err := hevc.ParseSPSNALUnit(sps[0]); err == nil && p.VUI != nil && p.VUI.ColourDescriptionFlag {
				tc = int(p.VUI.TransferCharacteristics)
			}
		}
	}
	ti.VideoRange = videoRange(tc)
	return nil
}

func naluArray(r hevc.DecConfRec, typ hevc.NaluType) [][]byte {
	for i := range r.NaluArrays {
		if r.NaluArrays[i].NaluType() == typ {
			return r.NaluArrays[i].Nalus
		}
	}
	return nil
}

// describeAV1 fills in an av01 track: av01.P.LLT.DD from av1C, followed by
// the colour fields (monochrome, chroma subsampling and position, primaries,
// transfer, matrix, range) when the sequence header in av1C says anything
// else than the defaults (BT.709, 4:2:0, studio range); a sequence header
// without a colour description counts as the defaults. The video range
// comes from the colr box, else the sequence header.
func describeAV1(ti *TrackInfo, se *mp4.VisualSampleEntryBox) error {
	ti.Width, ti.Height = int(se.Width), int(se.Height)
	ti.FourCC = "AV01"
	if se.Btrt != nil {
		ti.Bitrate = int(se.Btrt.AvgBitrate)
	}
	tc := colrTransfer(se.Children)
	if se.Av1C == nil {
		return fmt.Errorf("track %d: AV1 sample entry without av1C: %w", ti.TrackID, ErrUnsupported)
	}
	{
		rec := se.Av1C.CodecConfRec
		ti.Codec = rec.CodecString(ti.SampleEntry)
		if sh, err := rec.SequenceHeader(); err == nil {
			c := *sh
			if c.ColorPrimaries == 2 && c.TransferCharacteristics == 2 && c.MatrixCoefficients == 2 {
				// No colour description: the defaults, not "unspecified".
				c.ColorPrimaries, c.TransferCharacteristics, c.MatrixCoefficients = 1, 1, 1
			}
			ti.Codec = c.CodecString(ti.SampleEntry)
			if tc == 0 && sh.TransferCharacteristics != 2 {
				tc = int(sh.TransferCharacteristics)
			}
		}
	}
	ti.VideoRange = videoRange(tc)
	return nil
}

// describeAudio fills in the audio sample entries other than mp4a: Opus
// (dOps), AC-3 (dac3) and E-AC-3 (dec3). The channel count comes from the
// configuration record (an AC-3 sample entry's channelcount is not
// authoritative); AC-3 and E-AC-3 also get their Dolby channel mask.
func describeAudio(ti *TrackInfo, se *mp4.AudioSampleEntryBox) error {
	ti.SampleRate = int(se.SampleRate)
	ti.Channels = int(se.ChannelCount)
	ti.BitsPerSample = int(se.SampleSize)
	if se.Btrt != nil && se.Btrt.AvgBitrate > 0 {
		ti.Bitrate = int(se.Btrt.AvgBitrate)
	}
	switch ti.SampleEntry {
	case "Opus":
		ti.Codec, ti.FourCC = "Opus", "OPUS"
		if se.Dops == nil {
			return fmt.Errorf("track %d: Opus sample entry without dOps: %w", ti.TrackID, ErrUnsupported)
		}
		ti.Channels = int(se.Dops.OutputChannelCount)
		ti.SampleRate = 48000 // Opus always decodes at 48 kHz (RFC 7845 5.1)
	case "ac-3":
		ti.Codec, ti.FourCC = "ac-3", "AC-3"
		if se.Dac3 == nil {
			return fmt.Errorf("track %d: AC-3 sample entry without dac3: %w", ti.TrackID, ErrUnsupported)
		}
		n, mask := se.Dac3.ChannelInfo()
		ti.Channels, ti.ChannelMask = n, fmt.Sprintf("%04X", mask)
		ti.CodecPrivateData = dolbyCodecPrivateData(se.Dac3, subtypeDolbyAC3, se.Dac3.ACMod, se.Dac3.LFEOn, 0)
		if ti.Bitrate == 0 && int(se.Dac3.BitRateCode) < len(mp4.AC3BitrateCodesKbps) {
			ti.Bitrate = se.Dac3.BitrateBps()
		}
	case "ec-3":
		ti.Codec, ti.FourCC = "ec-3", "EC-3"
		if se.Dec3 == nil || len(se.Dec3.EC3Subs) == 0 {
			return fmt.Errorf("track %d: E-AC-3 sample entry without dec3: %w", ti.TrackID, ErrUnsupported)
		}
		n, mask := se.Dec3.ChannelInfo()
		ti.Channels, ti.ChannelMask = n, fmt.Sprintf("%04X", mask)
		sub := se.Dec3.EC3Subs[0]
		loc := uint16(0)
		if sub.NumDepSub > 0 {
			loc = sub.ChanLoc
		}
		ti.CodecPrivateData = dolbyCodecPrivateData(se.Dec3, subtypeDolbyDDPlus, sub.ACMod, sub.LFEOn, loc)
		ti.JOC = int(se.Dec3.JOCComplexity)
		if ti.Bitrate == 0 {
			ti.Bitrate = int(se.Dec3.DataRate) * 1000
		}
	}
	return nil
}

// Smooth CodecPrivateData of AC-3 and E-AC-3: Smooth announces these with
// AudioTag 65534 (WAVE_FORMAT_EXTENSIBLE), and CodecPrivateData is what
// follows the WAVEFORMATEX structure, as Microsoft's encoders and
// packagers write it: the WAVEFORMATEXTENSIBLE extension — wSamplesPerBlock
// (1536, little-endian), dwChannelMask (Windows speaker positions,
// little-endian) and the SubFormat GUID (MEDIASUBTYPE_DOLBY_AC3 or
// MEDIASUBTYPE_DOLBY_DDPLUS, in Windows' byte order) — followed by the
// payload of the dac3 or dec3 box (ETSI TS 102 366 F.4, F.6).
var (
	subtypeDolbyAC3    = [16]byte{0x2c, 0x80, 0x6d, 0xe0, 0x46, 0xdb, 0xcf, 0x11, 0xb4, 0xd1, 0x00, 0x80, 0x4f, 0x6c, 0xbb, 0xea} // {E06D802C-DB46-11CF-B4D1-00804F6CBBEA}
	subtypeDolbyDDPlus = [16]byte{0xaf, 0x87, 0xfb, 0xa7, 0x02, 0x2d, 0xfb, 0x42, 0xa4, 0xd4, 0x05, 0xcd, 0x93, 0x84, 0x3b, 0xdd} // {A7FB87AF-2D02-42FB-A4D4-05CD93843BDD}
)

// windowsSpeakers maps the Dolby channel names (mp4ff's) to the speaker
// position bits of WAVEFORMATEXTENSIBLE's dwChannelMask: 5.1 (L C R Ls Rs
// LFE) is 0x3F, 7.1 with rear surrounds (Lrs/Rrs) 0x63F, as Windows
// names them. Channels Windows has no position for add nothing.
var windowsSpeakers = map[string]uint32{
	"L": 0x1, "R": 0x2, "C": 0x4, "LFE": 0x8, "Ls": 0x10, "Rs": 0x20,
	"Lc/Rc": 0x40 | 0x80, "Cs": 0x100, "Lrs/Rrs": 0x200 | 0x400, "Ts": 0x800,
	"Lvh/Rvh": 0x1000 | 0x4000, "Cvh": 0x2000,
}

// dolbyCodecPrivateData returns the Smooth CodecPrivateData (upper-case
// hex) of an AC-3 (dac3) or E-AC-3 (dec3) sample entry, "" when the box
// does not encode.
func dolbyCodecPrivateData(box mp4.Box, subtype [16]byte, acmod, lfe byte, chanLoc uint16) string {
	var buf bytes.Buffer
	if err := box.Encode(&buf); err != nil || buf.Len() < 8 {
		return ""
	}
	var mask uint32
	if int(acmod) < len(mp4.AC3acmodChannelTable) {
		for _, c := range mp4.GetChannelListFromACMod(acmod) {
			mask |= windowsSpeakers[c]
		}
	}
	if lfe != 0 {
		mask |= windowsSpeakers["LFE"]
	}
	for i, c := range mp4.EC3ChannelLocationBits {
		if chanLoc&(1<<i) != 0 {
			mask |= windowsSpeakers[c]
		}
	}
	out := binary.LittleEndian.AppendUint16(nil, 1536)
	out = binary.LittleEndian.AppendUint32(out, mask)
	out = append(out, subtype[:]...)
	out = append(out, buf.Bytes()[8:]...)
	return strings.ToUpper(hex.EncodeToString(out))
}
