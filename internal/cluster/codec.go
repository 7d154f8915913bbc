package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// BatchContentType is the media type of the binary encoding of a Batch and
// of its BatchResult (AppendBatch, DecodeBatch, AppendBatchResult,
// DecodeBatchResult). A sender answers a batch in the encoding it was sent
// in: this one, or JSON (application/json) from a scheduler that predates it.
const BatchContentType = "application/vnd.sluice.batch"

// The binary batch encoding, hand-written because a scheduler encodes and
// decodes one batch per sender per timeslot with tens of thousands of pins
// and sent reports at 10 000 sessions, where encoding/json's reflection was
// a measurable share of its CPU (docs/cluster.md):
//
//	message  = magic (4 bytes: "SLB1" a Batch, "SLR1" a BatchResult), fields, nothing after
//	string   = uvarint i: i > 0 is the i-th string this message defined
//	           (1-based); i = 0 defines the next one: uvarint length, bytes
//	int      = zig-zag varint; count = uvarint (bounded by the bytes left)
//	duration = int (nanoseconds); time = 0 (zero time) | 1 int (Unix nanoseconds)
//	pin      = string session, block; block = string point, string track, int start
//	Batch    = string scheduler, duration lease, count+pins lookahead, cancel,
//	           send, string url, count+(string session, string point) grants,
//	           duration grant_ttl, count+string ends, 0 | 1 placement
//	           (uvarint replicas, count+(string id, string url) senders)
//	BatchResult = count+pins refused, count+blocks missing, count+sent
//	           (string session, block, time at, int bytes, byte from_ram,
//	           string nor), string boot, count+grants orphans,
//	           [count+(string session, string point, string track, time at)
//	           reloads: only when there are any, so that a scheduler that
//	           predates them, which never asks for them, decodes the rest]
//
// Session IDs and point names repeat in nearly every pin: each is written
// once per message and then referenced, which keeps a message small and
// its decoding to one allocation per distinct string.
var (
	batchMagic  = [4]byte{'S', 'L', 'B', '1'}
	resultMagic = [4]byte{'S', 'L', 'R', '1'}
)

// ErrCodec is wrapped by every error of the binary batch decoders: the
// message is truncated, malformed or of another kind or version.
var ErrCodec = errors.New("cluster: malformed binary batch message")

// maxStringLen bounds one string of a message (session IDs, names and
// URLs are far shorter).
const maxStringLen = 1 << 20

type encoder struct {
	b    []byte
	strs map[string]int
	// recent are the last strings written or referenced, by their length
	// modulo len(recent), with their references: a block's point and
	// track repeat from pin to pin, and are found here without hashing.
	recent [8]struct {
		s string
		i int
	}
}

// sized is an encoder whose string table has room for n strings (a
// message's distinct session IDs), so that it does not grow while a
// batch of thousands of pins is written.
func sized(dst []byte, n int) encoder {
	return encoder{b: dst, strs: make(map[string]int, min(max(n, 16), 1<<16))}
}

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) str(s string) {
	r := &e.recent[len(s)%len(e.recent)]
	if r.i != 0 && r.s == s {
		e.uint(uint64(r.i))
		return
	}
	if i, ok := e.strs[s]; ok {
		r.s, r.i = s, i
		e.uint(uint64(i))
		return
	}
	if e.strs == nil {
		e.strs = make(map[string]int, 64)
	}
	e.strs[s] = len(e.strs) + 1
	r.s, r.i = s, len(e.strs)
	e.uint(0)
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) block(b BlockID) {
	e.str(b.Point)
	e.str(b.Track)
	e.int(b.Start)
}

func (e *encoder) pins(ps []Pin) {
	e.uint(uint64(len(ps)))
	for _, p := range ps {
		e.str(p.Session)
		e.block(p.Block)
	}
}

func (e *encoder) grants(gs []Grant) {
	e.uint(uint64(len(gs)))
	for _, g := range gs {
		e.str(g.Session)
		e.str(g.Point)
	}
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.uint(0)
		return
	}
	e.uint(1)
	e.int(t.UnixNano())
}

// AppendBatch appends the binary encoding of b to dst.
func AppendBatch(dst []byte, b *Batch) []byte {
	e := sized(append(dst, batchMagic[:]...), len(b.LookAhead)+len(b.Cancel)+len(b.Send)+len(b.Grants)+len(b.Ends))
	e.str(b.Scheduler)
	e.int(int64(b.Lease))
	e.pins(b.LookAhead)
	e.pins(b.Cancel)
	e.pins(b.Send)
	e.str(b.URL)
	e.grants(b.Grants)
	e.int(int64(b.GrantTTL))
	e.uint(uint64(len(b.Ends)))
	for _, s := range b.Ends {
		e.str(s)
	}
	if b.Placement == nil {
		e.uint(0)
	} else {
		e.uint(1)
		e.uint(uint64(max(b.Placement.Replicas, 0)))
		e.uint(uint64(len(b.Placement.Senders)))
		for _, s := range b.Placement.Senders {
			e.str(s.ID)
			e.str(s.URL)
		}
	}
	return e.b
}

// AppendBatchResult appends the binary encoding of r to dst.
func AppendBatchResult(dst []byte, r *BatchResult) []byte {
	e := sized(append(dst, resultMagic[:]...), len(r.Refused)+len(r.Sent)+len(r.Orphans)+len(r.Reloads))
	e.pins(r.Refused)
	e.uint(uint64(len(r.Missing)))
	for _, b := range r.Missing {
		e.block(b)
	}
	e.uint(uint64(len(r.Sent)))
	for _, s := range r.Sent {
		e.str(s.Session)
		e.block(s.Block)
		e.time(s.At)
		e.int(s.Bytes)
		if s.FromRAM {
			e.b = append(e.b, 1)
		} else {
			e.b = append(e.b, 0)
		}
		e.str(s.Next)
	}
	e.str(r.Boot)
	e.grants(r.Orphans)
	if len(r.Reloads) > 0 {
		e.uint(uint64(len(r.Reloads)))
		for _, rl := range r.Reloads {
			e.str(rl.Session)
			e.str(rl.Point)
			e.str(rl.Track)
			e.time(rl.At)
		}
	}
	return e.b
}

// decoder reads a message; the first error sticks and every later read
// returns zero values.
type decoder struct {
	b    []byte
	off  int
	strs []string
	err  error
	what string // the field being read, for the error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d: %s", ErrCodec, d.what, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("truncated or overlong varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

// count reads an element count: at most one element per byte left (every
// element takes at least minSize bytes), so that a forged count cannot make
// the decoder allocate more than the message's size.
func (d *decoder) count(minSize int) int {
	v := d.uint()
	if d.err != nil {
		return 0
	}
	if left := uint64(len(d.b) - d.off); v > left/uint64(minSize) {
		d.fail("count %d exceeds the %d bytes left", v, left)
		return 0
	}
	return int(v)
}

func (d *decoder) str() string {
	i := d.uint()
	if d.err != nil {
		return ""
	}
	if i > 0 {
		if i > uint64(len(d.strs)) {
			d.fail("string reference %d of %d defined", i, len(d.strs))
			return ""
		}
		return d.strs[i-1]
	}
	n := d.uint()
	if d.err != nil {
		return ""
	}
	if n > maxStringLen || n > uint64(len(d.b)-d.off) {
		d.fail("string of %d bytes exceeds the %d bytes left (or %d)", n, len(d.b)-d.off, maxStringLen)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	d.strs = append(d.strs, s)
	return s
}

func (d *decoder) block() BlockID {
	return BlockID{Point: d.str(), Track: d.str(), Start: d.int()}
}

func (d *decoder) pins(what string) []Pin {
	d.what = what
	n := d.count(4)
	if n == 0 {
		return nil
	}
	out := make([]Pin, n)
	for i := range out {
		out[i] = Pin{Session: d.str(), Block: d.block()}
	}
	return out
}

func (d *decoder) grants(what string) []Grant {
	d.what = what
	n := d.count(2)
	if n == 0 {
		return nil
	}
	out := make([]Grant, n)
	for i := range out {
		out[i] = Grant{Session: d.str(), Point: d.str()}
	}
	return out
}

func (d *decoder) time() time.Time {
	switch d.uint() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.int())
	}
	d.fail("bad time tag")
	return time.Time{}
}

func (d *decoder) magic(m [4]byte, kind string) {
	d.what = "magic"
	if len(d.b) < 4 || [4]byte(d.b[:4]) != m {
		d.fail("not a binary %s (want %q)", kind, m[:])
		return
	}
	d.off = 4
}

func (d *decoder) end() error {
	if d.err == nil && d.off != len(d.b) {
		d.what = "end"
		d.fail("%d bytes after the message", len(d.b)-d.off)
	}
	return d.err
}

// DecodeBatch decodes a Batch encoded by AppendBatch. It allocates no more
// than a small multiple of len(b) and returns an error wrapping ErrCodec for
// any input that is not exactly one such message.
func DecodeBatch(b []byte) (Batch, error) {
	d := decoder{b: b}
	var out Batch
	d.magic(batchMagic, "batch")
	d.what = "scheduler"
	out.Scheduler = d.str()
	d.what = "lease"
	out.Lease = time.Duration(d.int())
	out.LookAhead = d.pins("lookahead")
	out.Cancel = d.pins("cancel")
	out.Send = d.pins("send")
	d.what = "url"
	out.URL = d.str()
	out.Grants = d.grants("grants")
	d.what = "grant_ttl"
	out.GrantTTL = time.Duration(d.int())
	d.what = "ends"
	if n := d.count(1); n > 0 {
		out.Ends = make([]string, n)
		for i := range out.Ends {
			out.Ends[i] = d.str()
		}
	}
	d.what = "placement"
	switch d.byte() {
	case 0:
	case 1:
		p := &Placement{}
		r := d.uint()
		if r > 1<<16 {
			d.fail("replication factor %d", r)
		}
		p.Replicas = int(r)
		if n := d.count(2); n > 0 {
			p.Senders = make([]PlacedSender, n)
			for i := range p.Senders {
				p.Senders[i] = PlacedSender{ID: d.str(), URL: d.str()}
			}
		}
		out.Placement = p
	default:
		d.fail("bad placement tag")
	}
	if err := d.end(); err != nil {
		return Batch{}, err
	}
	return out, nil
}

// DecodeBatchResult decodes a BatchResult encoded by AppendBatchResult,
// with the bounds and errors of DecodeBatch.
func DecodeBatchResult(b []byte) (BatchResult, error) {
	d := decoder{b: b}
	var out BatchResult
	d.magic(resultMagic, "batch result")
	out.Refused = d.pins("refused")
	d.what = "missing"
	if n := d.count(3); n > 0 {
		out.Missing = make([]BlockID, n)
		for i := range out.Missing {
			out.Missing[i] = d.block()
		}
	}
	d.what = "sent"
	if n := d.count(8); n > 0 {
		out.Sent = make([]SentReport, n)
		for i := range out.Sent {
			s := &out.Sent[i]
			s.Session = d.str()
			s.Block = d.block()
			s.At = d.time()
			s.Bytes = d.int()
			switch d.byte() {
			case 0:
			case 1:
				s.FromRAM = true
			default:
				d.fail("bad from_ram flag")
			}
			s.Next = d.str()
			if d.err != nil {
				break
			}
		}
	}
	d.what = "boot"
	out.Boot = d.str()
	out.Orphans = d.grants("orphans")
	if d.err == nil && d.off < len(d.b) {
		d.what = "reloads"
		if n := d.count(4); n > 0 {
			out.Reloads = make([]Reload, n)
			for i := range out.Reloads {
				rl := &out.Reloads[i]
				rl.Session, rl.Point, rl.Track = d.str(), d.str(), d.str()
				rl.At = d.time()
				if d.err != nil {
					break
				}
			}
		}
	}
	if err := d.end(); err != nil {
		return BatchResult{}, err
	}
	return out, nil
}
