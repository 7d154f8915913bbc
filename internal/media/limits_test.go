package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/sluice-media/sluice/internal/media"
)

// account is a media.Memory that records what it granted.
type account struct {
	held, peak int
	limit      int // 0: no limit
}

var errFull = errors.New("account full")

func (a *account) Grow(n int) error {
	if a.limit > 0 && a.held+n > a.limit {
		return errFull
	}
	a.held += n
	a.peak = max(a.peak, a.held)
	return nil
}

func (a *account) Release(n int) { a.held -= n }

// boxHeader is the 8-byte header of a box of the given size and type.
func boxHeader(size uint32, typ string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, size)
	copy(b[4:], typ)
	return b
}

// onlyReader hides bytes.Reader's Len, as a network body would.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestBoxBufferGrowsWithArrivedBytes: a box that declares 64 MiB and
// delivers 1 MiB costs about the 1 MiB (doubling), not 64 MiB.
func TestBoxBufferGrowsWithArrivedBytes(t *testing.T) {
	body := append(boxHeader(64<<20, "mdat"), make([]byte, 1<<20)...)
	var a account
	br := media.NewBoxReader(onlyReader{bytes.NewReader(body)}, 64<<20)
	br.SetMemory(&a)
	_, err := br.Next()
	if !errors.Is(err, media.ErrTruncated) {
		t.Fatalf("err %v, want truncated", err)
	}
	if a.peak > 2<<20+8 {
		t.Fatalf("peak %d bytes held for 1 MiB that arrived", a.peak)
	}
	br.Release()
	if a.held != 0 {
		t.Fatalf("%d bytes still held", a.held)
	}
}

// TestMemoryRefusalAborts: a box whose growth the account refuses ends
// the read with the account's error.
func TestMemoryRefusalAborts(t *testing.T) {
	body := append(boxHeader(8<<20, "mdat"), make([]byte, 8<<20)...)
	a := account{limit: 1 << 20}
	br := media.NewBoxReader(onlyReader{bytes.NewReader(body)}, 64<<20)
	br.SetMemory(&a)
	if _, err := br.Next(); !errors.Is(err, errFull) {
		t.Fatalf("err %v, want the account's error", err)
	}
}

// TestParserSkipsAndBoundsBoxesWithoutMedia: padding and unknown boxes are
// discarded as they arrive (nothing buffered), and more than the box bound
// of them between two events is refused (ErrNoMedia); the same padding
// between fragments is fine.
func TestParserSkipsAndBoundsBoxesWithoutMedia(t *testing.T) {
	body, err := os.ReadFile("testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	var boxes [][]byte
	for off := 0; off < len(body); {
		n := int(binary.BigEndian.Uint32(body[off:]))
		boxes = append(boxes, body[off:off+n])
		off += n
	}
	pad := func(n int) []byte { return append(boxHeader(uint32(n), "free"), make([]byte, n-8)...) }
	const bound = 1 << 20

	// 3 × 600 KiB of padding before every moof: 1.8 MiB in all, but never
	// more than the bound between two events.
	var ok []byte
	for _, b := range boxes {
		if string(b[4:8]) == "moof" {
			ok = append(ok, pad(300<<10)...)
			ok = append(ok, pad(300<<10)...)
		}
		ok = append(ok, b...)
	}
	var a account
	p := media.NewStreamParser(onlyReader{bytes.NewReader(ok)}, bound, nil)
	p.SetMemory(&a)
	frags := 0
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("padding between fragments: %v", err)
		}
		if ev.Kind == media.EventFragment {
			frags++
		}
	}
	if frags == 0 || a.peak >= 300<<10 {
		t.Fatalf("%d fragments, peak %d bytes held (padding buffered?)", frags, a.peak)
	}
	p.Close()
	if a.held != 0 {
		t.Fatalf("%d bytes still held after Close", a.held)
	}

	// A flood of padding after the header.
	flood := append([]byte(nil), boxes[0]...)
	for i := 1; i < len(boxes) && string(boxes[i][4:8]) != "moof"; i++ {
		flood = append(flood, boxes[i]...)
	}
	for i := 0; i < 5; i++ {
		flood = append(flood, pad(300<<10)...)
	}
	p = media.NewStreamParser(onlyReader{bytes.NewReader(flood)}, bound, nil)
	for {
		_, err := p.Next()
		if errors.Is(err, media.ErrNoMedia) {
			break
		}
		if err != nil {
			t.Fatalf("flood: err %v, want ErrNoMedia", err)
		}
	}
}

// TestParserProgress: InBox is true only while a box is arriving, and
// Events counts headers, fragments and ends.
func TestParserProgress(t *testing.T) {
	body, err := os.ReadFile("testdata/small.ismv")
	if err != nil {
		t.Fatal(err)
	}
	var p *media.StreamParser
	in := 0
	src := dripReader{bytes.NewReader(body), 100}
	p = media.NewStreamParser(readFunc(func(b []byte) (int, error) {
		if p.InBox() {
			in++
		}
		return src.Read(b)
	}), 1<<20, nil)
	n := int64(0)
	for {
		_, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if p.Events() != n {
			t.Fatalf("Events %d after %d events", p.Events(), n)
		}
		if p.InBox() {
			t.Fatal("InBox between boxes")
		}
	}
	if n < 3 || in == 0 {
		t.Fatalf("%d events, %d reads inside a box", n, in)
	}
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }
