package testkit

import (
	"bytes"

	"github.com/Eyevinn/mp4ff/mp4"
)

// CMAFInit returns a valid single-track CMAF header (ftyp+moov) of a
// WebVTT text track with track_ID 1 and timescale 1000: what a sender
// accepts as a track's init segment.
func CMAFInit() []byte {
	init := mp4.CreateEmptyInit()
	trak := init.AddEmptyTrack(1000, "wvtt", "und")
	if err := trak.SetWvttDescriptor("WEBVTT"); err != nil {
		panic(err)
	}
	var buf bytes.Buffer
	if err := init.Encode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// CMAFFragment returns one fragment (moof+mdat) of the track of CMAFInit,
// size bytes long in all (more when size is below the ~100 bytes of its
// boxes): one sample starting at start (tfdt), lasting dur, whose payload
// starts with seq.
func CMAFFragment(seq uint32, start int64, dur uint32, size int) []byte {
	overhead := len(cmafFragment(seq, start, dur, 0))
	return cmafFragment(seq, start, dur, max(size-overhead, 4))
}

func cmafFragment(seq uint32, start int64, dur uint32, payloadSize int) []byte {
	f, err := mp4.CreateFragment(seq, 1)
	if err != nil {
		panic(err)
	}
	payload := bytes.Repeat([]byte{byte('a' + seq%26)}, payloadSize)
	copy(payload, []byte{byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)})
	f.AddFullSample(mp4.FullSample{
		Sample:     mp4.Sample{Dur: dur, Size: uint32(payloadSize), Flags: mp4.SyncSampleFlags},
		DecodeTime: uint64(start),
		Data:       payload,
	})
	var buf bytes.Buffer
	if err := f.Encode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
