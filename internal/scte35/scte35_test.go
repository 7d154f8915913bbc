package scte35

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"testing"
)

// sample is the splice_insert example of SCTE 35 (2022) section 14.2.
const sample = "/DAvAAAAAAAA///wFAVIAACPf+/+c2nALv4AUsz1AAAAAAAKAAhDVUVJAAABNWLbowo="

func TestDecodeSample(t *testing.T) {
	b, _ := base64.StdEncoding.DecodeString(sample)
	s, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Splice{
		Command: SpliceInsert, Tier: 0xFFF, CWIndex: 0xFF, EventID: 0x4800008F, Out: true, AutoReturn: true,
		HasDuration: true, Duration: 0x0052CCF5, HasPTS: true, PTS: 0x07369C02E,
		Descriptors: []byte{0x00, 0x08, 'C', 'U', 'E', 'I', 0x00, 0x00, 0x01, 0x35},
	}
	if !equal(s, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", s, want)
	}
	out, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("re-encoded %x\nwant        %x", out, b)
	}
}

func equal(a, b Splice) bool {
	if len(a.Descriptors) == 0 && len(b.Descriptors) == 0 {
		a.Descriptors, b.Descriptors = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func TestRoundTrip(t *testing.T) {
	for _, s := range []Splice{
		{Command: SpliceNull, Tier: 0xFFF},
		{Command: SpliceInsert, Tier: 0xFFF, EventID: 7, Out: true, Immediate: true, HasDuration: true, Duration: 30 * 90000, AutoReturn: true},
		{Command: SpliceInsert, Tier: 0xFFF, EventID: 7, Out: false, HasPTS: true, PTS: MaxPTS},
		{Command: SpliceInsert, Tier: 0xFFF, EventID: 9, Cancel: true},
		{Command: TimeSignal, Tier: 0xFFF, HasPTS: true, PTS: 12345, PTSAdjustment: 1 << 32},
		{Command: TimeSignal, Tier: 0x123},
	} {
		b, err := s.Encode()
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		if !equal(got, s) {
			t.Errorf("round trip\n%+v\ngot\n%+v", s, got)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := base64.StdEncoding.DecodeString(sample)
	crc := bytes.Clone(good)
	crc[len(crc)-1] ^= 1
	short := bytes.Clone(good[:20])
	for name, b := range map[string][]byte{"empty": nil, "table": {0xFD, 0, 0}, "crc": crc, "short": short} {
		if _, err := Decode(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := base64.StdEncoding.DecodeString(sample)
	f.Add(b)
	for _, s := range []Splice{{Command: TimeSignal, HasPTS: true, PTS: 5}, {Command: SpliceInsert, EventID: 1, Cancel: true}} {
		e, _ := s.Encode()
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil || s.Encrypted {
			return
		}
		if s.Command != SpliceNull && s.Command != SpliceInsert && s.Command != TimeSignal {
			return
		}
		e, err := s.Encode()
		if err != nil {
			return // e.g. a component splice, which Encode does not write
		}
		s2, err := Decode(e)
		if err != nil {
			t.Fatalf("re-encoded section does not decode: %v", err)
		}
		if !equal(s, s2) {
			t.Fatalf("round trip changed %+v to %+v", s, s2)
		}
	})
}
