package media

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strconv"

	"github.com/Eyevinn/mp4ff/avc"
	"github.com/Eyevinn/mp4ff/hevc"
	"github.com/Eyevinn/mp4ff/sei"
)

// Closed captions carried in the video (CEA-608 and CEA-708 in the SEI
// messages of H.264 and HEVC samples, ATSC A/53 Part 4): a CaptionScan
// looks for them in a video track's first fragments and names the caption
// channels and services it finds.
//
// The names are those of HLS INSTREAM-ID: CC1 to CC4 for the CEA-608
// channels (field 1 carries CC1 and CC2, field 2 CC3 and CC4) and
// SERVICE1 to SERVICE63 for the CEA-708 services.

// Caption scan bounds: a track's scan ends after this many fragments or
// bytes of samples, found or not, so that it costs a bounded amount per
// track and nothing per sample afterwards.
const (
	CaptionScanFragments = 8
	CaptionScanBytes     = 16 << 20
)

// CaptionScan detects the closed captions of one video track from its
// fragments. It is not safe for concurrent use.
type CaptionScan struct {
	hevc       bool
	lengthSize int
	frags      int
	bytes      int
	// cc608 are the CEA-608 channels a caption command was seen on (bit
	// n-1 for CCn); field1/field2 say that a field carried anything.
	cc608          uint8
	field1, field2 bool
	// services are the CEA-708 services with a non-empty service block
	// (bit n for SERVICEn).
	services uint64
	packet   []byte // the CEA-708 DTVCC packet being assembled
}

// NewCaptionScan returns a scan of the track of a stored single-track
// header (Header.TrackInit), or nil when the track is no H.264 or HEVC
// video (nothing else carries captions in SEI).
func NewCaptionScan(init []byte) *CaptionScan {
	h, err := ParseStoredHeader(init)
	if err != nil || len(h.Tracks) != 1 || h.moov == nil || len(h.moov.Traks) != 1 {
		return nil
	}
	tr := h.moov.Traks[0]
	stsd := tr.Mdia.Minf.Stbl.Stsd
	// mp4ff (and so ParseStoredHeader) accepts 4-byte NAL unit lengths only.
	switch {
	case stsd.AvcX != nil && stsd.AvcX.AvcC != nil:
		return &CaptionScan{lengthSize: 4}
	case stsd.HvcX != nil && stsd.HvcX.HvcC != nil:
		return &CaptionScan{hevc: true, lengthSize: 4}
	}
	return nil
}

// NewCaptionScanNALU returns a scan of H.264 (hevc false) or HEVC samples
// whose NAL units are prefixed by lengthSize-byte lengths.
func NewCaptionScanNALU(isHEVC bool, lengthSize int) *CaptionScan {
	return &CaptionScan{hevc: isHEVC, lengthSize: lengthSize}
}

// Done reports whether the scan has used up its budget: Fragment does
// nothing any more.
func (s *CaptionScan) Done() bool {
	return s.frags >= CaptionScanFragments || s.bytes >= CaptionScanBytes
}

// Fragment scans the samples of a stored fragment (moof+mdat): the mdat
// payload is read as the track's samples back to back, as every encoder
// lays them out, and the scan of the fragment ends at the first NAL unit
// length that does not fit. It reports whether Captions changed.
func (s *CaptionScan) Fragment(data []byte) bool {
	if s.Done() {
		return false
	}
	s.frags++
	_, off, err := SplitFragment(data)
	if err != nil || off+8 > len(data) || string(data[off+4:off+8]) != "mdat" {
		return false
	}
	size, hdr := uint64(binary.BigEndian.Uint32(data[off:])), 8
	if size == 1 {
		if off+16 > len(data) {
			return false
		}
		size, hdr = binary.BigEndian.Uint64(data[off+8:]), 16
	}
	end := len(data)
	if size >= uint64(hdr) && size <= uint64(len(data)-off) {
		end = off + int(size)
	}
	return s.Samples(data[off+hdr : end])
}

// Samples scans length-prefixed NAL units (one sample or several back to
// back) and reports whether Captions changed.
func (s *CaptionScan) Samples(b []byte) bool {
	before := s.Captions()
	room := CaptionScanBytes - s.bytes
	if len(b) > room {
		b = b[:max(room, 0)]
	}
	s.bytes += len(b)
	ls := s.lengthSize
	if ls < 1 || ls > 4 {
		return false
	}
	for len(b) >= ls {
		n := 0
		for _, c := range b[:ls] {
			n = n<<8 | int(c)
		}
		b = b[ls:]
		if n == 0 || n > len(b) {
			break
		}
		s.nalu(b[:n])
		b = b[n:]
	}
	return !slices.Equal(before, s.Captions())
}

// ga94 is the ATSC user identifier of cc_data in a registered SEI.
var ga94 = []byte("GA94")

// nalu scans one NAL unit: the SEI ones (H.264 type 6, HEVC prefix SEI).
func (s *CaptionScan) nalu(n []byte) {
	hdr := 1
	if s.hevc {
		if len(n) < 2 || hevc.GetNaluType(n[0]) != hevc.NALU_SEI_PREFIX {
			return
		}
		hdr = 2
	} else if len(n) < 1 || avc.GetNaluType(n[0]) != avc.NALU_SEI {
		return
	}
	// Only an SEI with the GA94 identifier can carry captions: the four
	// bytes are never split by emulation prevention (which follows two
	// zero bytes only), so a plain search skips the others (an encoder's
	// version string, timing) without parsing them.
	if !bytes.Contains(n[hdr:], ga94) {
		return
	}
	// A message list that ends badly (no trailing bits) still returns the
	// messages before it.
	msgs, _ := sei.ExtractSEIData(bytes.NewReader(n[hdr:]))
	for i := range msgs {
		m := &msgs[i]
		if m.Type() != sei.SEIUserDataRegisteredITUtT35Type {
			continue
		}
		p := m.Payload()
		if len(p) < sei.ITUDataSize {
			continue
		}
		id := sei.ITUData{
			CountryCode:      p[0],
			ProviderCode:     binary.BigEndian.Uint16(p[1:3]),
			UserIdentifier:   binary.BigEndian.Uint32(p[3:7]),
			UserDataTypeCode: p[7],
		}
		if id.IsCTA608() {
			s.ccData(p[sei.ITUDataSize:])
		}
	}
}

// ccData scans a cc_data() structure (CTA-708-E 4.3): cc_count triplets of
// marker/cc_valid/cc_type and two bytes.
func (s *CaptionScan) ccData(b []byte) {
	if len(b) < 2 || b[0]&0x40 == 0 { // process_cc_data_flag
		return
	}
	count := int(b[0] & 0x1f)
	b = b[2:] // flags and cc_count, em_data
	for i := 0; i < count && len(b) >= 3; i++ {
		valid, typ, d1, d2 := b[0]&0x04 != 0, b[0]&0x03, b[1], b[2]
		b = b[3:]
		if !valid {
			if typ >= 2 {
				s.endPacket()
			}
			continue
		}
		switch typ {
		case 0, 1:
			s.cea608(typ == 1, d1&0x7f, d2&0x7f)
		case 3: // DTVCC packet start
			s.endPacket()
			s.packet = append(s.packet[:0], d1, d2)
		case 2: // DTVCC packet data
			if len(s.packet) > 0 {
				s.packet = append(s.packet, d1, d2)
			}
		}
		if len(s.packet) > 0 && len(s.packet) >= dtvccPacketSize(s.packet[0]) {
			s.endPacket()
		}
	}
}

// cea608 notes one CEA-608 byte pair (parity bits removed) of a field: a
// caption command (resume caption loading, roll-up, paint-on) names the
// channel it is sent on.
func (s *CaptionScan) cea608(field2 bool, d1, d2 byte) {
	if d1 == 0 && d2 == 0 {
		return // padding
	}
	if field2 {
		s.field2 = true
	} else {
		s.field1 = true
	}
	if d1&^0x09 != 0x14 { // 0x14, 0x15, 0x1C, 0x1D: miscellaneous control codes
		return
	}
	switch d2 {
	case 0x20, 0x25, 0x26, 0x27, 0x29: // RCL, RU2, RU3, RU4, RDC
	default:
		return
	}
	ch := 0
	if d1&0x08 != 0 {
		ch = 1
	}
	if field2 {
		ch += 2
	}
	s.cc608 |= 1 << ch
}

// dtvccPacketSize is the size of a DTVCC packet from its header byte
// (CTA-708-E 5: packet_size_code 0 means 128 bytes).
func dtvccPacketSize(h byte) int {
	if c := int(h & 0x3f); c > 0 {
		return 2 * c
	}
	return 128
}

// endPacket scans the service blocks of the DTVCC packet being assembled
// (CTA-708-E 6.2) and drops it.
func (s *CaptionScan) endPacket() {
	p := s.packet
	s.packet = s.packet[:0]
	if len(p) == 0 {
		return
	}
	p = p[1:min(len(p), dtvccPacketSize(p[0]))]
	for len(p) > 0 {
		sn, size := int(p[0]>>5), int(p[0]&0x1f)
		p = p[1:]
		if sn == 7 && size != 0 {
			if len(p) == 0 {
				return
			}
			sn = int(p[0] & 0x3f)
			p = p[1:]
		}
		if sn == 0 || size == 0 {
			return // null service block: the rest is padding
		}
		if size > len(p) {
			size = len(p)
		}
		s.services |= 1 << sn
		p = p[size:]
	}
}

// Captions returns the caption channels and services found so far, in
// HLS INSTREAM-ID form: CC1 to CC4, then SERVICE1 to SERVICE63. CEA-608
// data on which no caption command was seen counts as CC1 (field 1) or
// CC3 (field 2).
func (s *CaptionScan) Captions() []string {
	cc := s.cc608
	if s.field1 && cc&0x3 == 0 {
		cc |= 1
	}
	if s.field2 && cc&0xc == 0 {
		cc |= 4
	}
	var out []string
	for i := range 4 {
		if cc&(1<<i) != 0 {
			out = append(out, "CC"+strconv.Itoa(i+1))
		}
	}
	for n := 1; n < 64; n++ {
		if s.services&(1<<n) != 0 {
			out = append(out, "SERVICE"+strconv.Itoa(n))
		}
	}
	return out
}

// MergeCaptions returns the union of two Captions lists, in their order.
func MergeCaptions(a, b []string) []string {
	out := slices.Clone(a)
	for _, c := range b {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(x, y string) int { return captionRank(x) - captionRank(y) })
	return out
}

// captionRank orders CC1..CC4 before SERVICE1..SERVICE63.
func captionRank(c string) int {
	if n, ok := cutNumber(c, "CC"); ok {
		return n
	}
	if n, ok := cutNumber(c, "SERVICE"); ok {
		return 100 + n
	}
	return 1000
}

func cutNumber(s, prefix string) (int, bool) {
	if len(s) <= len(prefix) || s[:len(prefix)] != prefix {
		return 0, false
	}
	n, err := strconv.Atoi(s[len(prefix):])
	return n, err == nil
}
