// Package scte35 encodes and decodes the parts of an SCTE-35
// splice_info_section (SCTE 35 2022, section 9) that ad-break signalling
// needs: splice_null, splice_insert (out/in, event id, splice time, break
// duration) and time_signal. Descriptors are kept as raw bytes; encrypted
// sections and component-level splices are decoded only as far as their
// command type.
package scte35

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrInvalid marks bytes that are not a well-formed splice_info_section.
var ErrInvalid = errors.New("invalid splice_info_section")

// Command is a splice_command_type.
type Command uint8

// Splice command types.
const (
	SpliceNull   Command = 0x00
	SpliceInsert Command = 0x05
	TimeSignal   Command = 0x06
)

func (c Command) String() string {
	switch c {
	case SpliceNull:
		return "splice_null"
	case SpliceInsert:
		return "splice_insert"
	case TimeSignal:
		return "time_signal"
	}
	return fmt.Sprintf("command 0x%02x", uint8(c))
}

// TableID is the table_id of every splice_info_section.
const TableID = 0xFC

// MaxPTS is the largest 33-bit PTS value; times wrap modulo MaxPTS+1.
const MaxPTS = 1<<33 - 1

// Splice is a decoded splice_info_section. Times are in 90 kHz ticks.
type Splice struct {
	Command       Command
	PTSAdjustment uint64
	Tier          uint16 // 12 bits; 0 is encoded as 0xFFF (not used)
	CWIndex       uint8  // cw_index; meaningless when not encrypted
	// splice_insert fields.
	EventID         uint32
	Cancel          bool
	Out             bool // out_of_network_indicator: the start of a break
	Immediate       bool // splice_immediate_flag
	AutoReturn      bool
	HasDuration     bool
	Duration        uint64 // break_duration, when HasDuration
	UniqueProgramID uint16
	AvailNum        uint8
	AvailsExpected  uint8
	// ComponentSplice is set for a splice_insert in component splice mode
	// (program_splice_flag 0), whose per-component times are not kept;
	// Encode refuses it.
	ComponentSplice bool
	// splice_insert (program splice, not immediate) and time_signal:
	// the splice time, when HasPTS.
	HasPTS bool
	PTS    uint64
	// Descriptors is the raw splice descriptor loop.
	Descriptors []byte
	// Encrypted is set for an encrypted section, whose command is not
	// decoded.
	Encrypted bool
}

// Encode returns the splice_info_section for s (unencrypted, with its
// CRC_32). Only SpliceNull, SpliceInsert (program splice mode) and
// TimeSignal can be encoded.
func (s Splice) Encode() ([]byte, error) {
	var cmd []byte
	switch s.Command {
	case SpliceNull:
	case SpliceInsert:
		if s.ComponentSplice {
			return nil, fmt.Errorf("cannot encode a component splice_insert")
		}
		cmd = binary.BigEndian.AppendUint32(cmd, s.EventID)
		if s.Cancel {
			cmd = append(cmd, 0xFF)
			break
		}
		cmd = append(cmd, 0x7F)
		flags := byte(0x40 | 0x0F) // program_splice_flag, reserved
		if s.Out {
			flags |= 0x80
		}
		if s.HasDuration {
			flags |= 0x20
		}
		if s.Immediate {
			flags |= 0x10
		}
		cmd = append(cmd, flags)
		if !s.Immediate {
			cmd = appendSpliceTime(cmd, s.HasPTS, s.PTS)
		}
		if s.HasDuration {
			if s.Duration > MaxPTS {
				return nil, fmt.Errorf("break duration %d exceeds 33 bits: %w", s.Duration, ErrInvalid)
			}
			b := byte(0x7E)
			if s.AutoReturn {
				b |= 0x80
			}
			cmd = append(cmd, b|byte(s.Duration>>32))
			cmd = binary.BigEndian.AppendUint32(cmd, uint32(s.Duration))
		}
		cmd = binary.BigEndian.AppendUint16(cmd, s.UniqueProgramID)
		cmd = append(cmd, s.AvailNum, s.AvailsExpected)
	case TimeSignal:
		cmd = appendSpliceTime(cmd, s.HasPTS, s.PTS)
	default:
		return nil, fmt.Errorf("cannot encode %s", s.Command)
	}
	if s.HasPTS && s.PTS > MaxPTS || s.PTSAdjustment > MaxPTS {
		return nil, fmt.Errorf("time exceeds 33 bits: %w", ErrInvalid)
	}
	tier := s.Tier
	if tier == 0 {
		tier = 0xFFF
	}
	// After section_length: protocol_version(1) pts_adjustment(5) cw_index(1)
	// tier+command_length(3) type(1) command descriptor_loop_length(2)
	// descriptors CRC(4).
	sectionLen := 1 + 5 + 1 + 3 + 1 + len(cmd) + 2 + len(s.Descriptors) + 4
	if sectionLen > 4093 || len(s.Descriptors) > 0xFFFF {
		return nil, fmt.Errorf("section of %d bytes is too long: %w", sectionLen, ErrInvalid)
	}
	b := make([]byte, 0, 3+sectionLen)
	b = append(b, TableID)
	b = binary.BigEndian.AppendUint16(b, 0x3000|uint16(sectionLen)) // sap_type 3: not specified
	b = append(b, 0)                                                // protocol_version
	b = append(b, byte(s.PTSAdjustment>>32)&1)                      // encrypted 0, algorithm 0
	b = binary.BigEndian.AppendUint32(b, uint32(s.PTSAdjustment))
	b = append(b, s.CWIndex)
	tc := uint32(tier&0xFFF)<<12 | uint32(len(cmd))&0xFFF
	b = append(b, byte(tc>>16), byte(tc>>8), byte(tc))
	b = append(b, byte(s.Command))
	b = append(b, cmd...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Descriptors)))
	b = append(b, s.Descriptors...)
	return binary.BigEndian.AppendUint32(b, CRC32(b)), nil
}

func appendSpliceTime(b []byte, has bool, pts uint64) []byte {
	if !has {
		return append(b, 0x7F)
	}
	b = append(b, 0xFE|byte(pts>>32)&1)
	return binary.BigEndian.AppendUint32(b, uint32(pts))
}

// Decode parses a splice_info_section, checking its length and CRC_32.
func Decode(b []byte) (Splice, error) {
	var s Splice
	if len(b) < 3 || b[0] != TableID {
		return s, fmt.Errorf("no table_id 0xFC: %w", ErrInvalid)
	}
	n := int(binary.BigEndian.Uint16(b[1:]) & 0xFFF)
	if n < 1+5+1+3+1+2+4 || 3+n > len(b) {
		return s, fmt.Errorf("section_length %d does not fit %d bytes: %w", n, len(b), ErrInvalid)
	}
	b = b[:3+n]
	if CRC32(b[:len(b)-4]) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return s, fmt.Errorf("CRC_32 mismatch: %w", ErrInvalid)
	}
	if b[3] != 0 {
		return s, fmt.Errorf("protocol_version %d: %w", b[3], ErrInvalid)
	}
	s.Encrypted = b[4]&0x80 != 0
	s.PTSAdjustment = uint64(b[4]&1)<<32 | uint64(binary.BigEndian.Uint32(b[5:]))
	s.CWIndex = b[9]
	tc := uint32(b[10])<<16 | uint32(b[11])<<8 | uint32(b[12])
	s.Tier = uint16(tc >> 12)
	cmdLen := int(tc & 0xFFF)
	s.Command = Command(b[13])
	body := b[14 : len(b)-4]
	if s.Encrypted {
		return s, nil
	}
	if cmdLen == 0xFFF {
		// Legacy: length not given; only the commands decoded below can
		// be walked.
		cmdLen = -1
	}
	r := reader{b: body}
	switch s.Command {
	case SpliceNull:
	case SpliceInsert:
		s.EventID = r.u32()
		s.Cancel = r.u8()&0x80 != 0
		if !s.Cancel {
			f := r.u8()
			s.Out = f&0x80 != 0
			program := f&0x40 != 0
			s.HasDuration = f&0x20 != 0
			s.Immediate = f&0x10 != 0
			if program && !s.Immediate {
				s.HasPTS, s.PTS = r.spliceTime()
			}
			if !program {
				s.ComponentSplice = true
				count := int(r.u8())
				for range count {
					r.u8() // component_tag
					if !s.Immediate {
						r.spliceTime()
					}
				}
			}
			if s.HasDuration {
				x := r.u8()
				s.AutoReturn = x&0x80 != 0
				s.Duration = uint64(x&1)<<32 | uint64(r.u32())
			}
			s.UniqueProgramID = uint16(r.u8())<<8 | uint16(r.u8())
			s.AvailNum = r.u8()
			s.AvailsExpected = r.u8()
		}
	case TimeSignal:
		s.HasPTS, s.PTS = r.spliceTime()
	default:
		if cmdLen < 0 {
			return s, fmt.Errorf("%s without splice_command_length: %w", s.Command, ErrInvalid)
		}
		r.skip(cmdLen)
	}
	if r.bad {
		return s, fmt.Errorf("%s runs past the section: %w", s.Command, ErrInvalid)
	}
	if cmdLen >= 0 && r.off != cmdLen {
		return s, fmt.Errorf("%s is %d bytes, splice_command_length says %d: %w", s.Command, r.off, cmdLen, ErrInvalid)
	}
	dl := int(uint16(r.u8())<<8 | uint16(r.u8()))
	if r.bad || r.off+dl > len(body) {
		return s, fmt.Errorf("descriptor_loop_length %d runs past the section: %w", dl, ErrInvalid)
	}
	if dl > 0 {
		s.Descriptors = append([]byte(nil), body[r.off:r.off+dl]...)
	}
	return s, nil
}

type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) u8() byte {
	if r.off >= len(r.b) {
		r.bad = true
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) u32() uint32 {
	return uint32(r.u8())<<24 | uint32(r.u8())<<16 | uint32(r.u8())<<8 | uint32(r.u8())
}

func (r *reader) skip(n int) {
	if r.off+n > len(r.b) {
		r.bad = true
		return
	}
	r.off += n
}

func (r *reader) spliceTime() (bool, uint64) {
	f := r.u8()
	if f&0x80 == 0 {
		return false, 0
	}
	return true, uint64(f&1)<<32 | uint64(r.u32())
}

var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC32 is the MPEG-2 CRC_32 (polynomial 0x04C11DB7, initial value all
// ones, not reflected) that ends a splice_info_section.
func CRC32(b []byte) uint32 {
	c := uint32(0xFFFFFFFF)
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^x]
	}
	return c
}
