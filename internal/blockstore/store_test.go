package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/testkit"
)

func blk(i int) cluster.BlockID {
	return cluster.BlockID{Point: "ch", Track: "video_1000", Start: int64(i)}
}

func payload(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, fmt.Sprintf("block-%d", i))
	return b
}

// newStore returns a store with n blocks of size bytes each on disk.
func newStore(t *testing.T, n, size int, budget int64, clk *testkit.Clock) *Store {
	t.Helper()
	d, err := OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := d.PutBlock(context.Background(), blk(i), payload(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Backend: d, RAMBudget: budget, NoAdmitOnMiss: true}
	if clk != nil {
		o.Now = clk.Now
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pin(sess string, i int) cluster.Pin { return cluster.Pin{Session: sess, Block: blk(i)} }

// waitIdle waits until no load is in flight.
func waitIdle(t *testing.T, s *Store, ids ...int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, i := range ids {
		s.WaitLoaded(ctx, blk(i))
	}
}

// op is one step of a table test.
type op struct {
	kind  string // pin, unpin, drop, open, expire, renew, advance
	sched string
	sess  string
	block int
	d     time.Duration
	want  PinStatus // for pin
}

func run(t *testing.T, s *Store, clk *testkit.Clock, ops []op) {
	t.Helper()
	ctx := context.Background()
	for i, o := range ops {
		switch o.kind {
		case "pin":
			if got := s.Pin(ctx, o.sched, pin(o.sess, o.block)); got != o.want {
				t.Fatalf("step %d: pin %s/%s/%d = %v, want %v", i, o.sched, o.sess, o.block, got, o.want)
			}
			waitIdle(t, s, o.block)
		case "unpin":
			s.Unpin(o.sched, pin(o.sess, o.block))
		case "drop":
			s.DropScheduler(o.sched)
		case "open":
			b, err := s.Open(ctx, blk(o.block))
			if err != nil {
				t.Fatalf("step %d: open %d: %v", i, o.block, err)
			}
			b.Close()
		case "renew":
			s.Renew(o.sched, o.d)
		case "advance":
			clk.Add(o.d)
		case "expire":
			s.ExpireLeases()
		default:
			t.Fatalf("unknown op %q", o.kind)
		}
	}
}

func TestCounters(t *testing.T) {
	for _, c := range []struct {
		name   string
		ops    []op
		counts map[int]int
		pinned int
	}{
		{"one pin", []op{{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned}}, map[int]int{0: 1}, 1},
		{"repeat does not double count", []op{
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Repeated},
		}, map[int]int{0: 1}, 1},
		{"two sessions count twice", []op{
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s2", block: 0, want: Pinned},
		}, map[int]int{0: 2}, 1},
		{"same session at two schedulers counts twice", []op{
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned},
			{kind: "pin", sched: "B", sess: "s1", block: 0, want: Pinned},
		}, map[int]int{0: 2}, 1},
		{"cancel decrements", []op{
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s2", block: 0, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s1", block: 0},
		}, map[int]int{0: 1}, 1},
		{"cancel of an unknown pin changes nothing", []op{
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s9", block: 0},
			{kind: "unpin", sched: "B", sess: "s1", block: 0},
			{kind: "unpin", sched: "A", sess: "s1", block: 1},
		}, map[int]int{0: 1}, 1},
		{"repeated cancel does not go below zero", []op{
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s2", block: 0, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s1", block: 0},
			{kind: "unpin", sched: "A", sess: "s1", block: 0},
		}, map[int]int{0: 1}, 1},
		{"drop scheduler releases exactly its pins", []op{
			{kind: "pin", sched: "A", sess: "s1", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s1", block: 1, want: Pinned},
			{kind: "pin", sched: "B", sess: "s2", block: 1, want: Pinned},
			{kind: "drop", sched: "A"},
		}, map[int]int{0: 0, 1: 1}, 1},
		{"missing block", []op{{kind: "pin", sched: "A", sess: "s1", block: 99, want: Missing}}, map[int]int{99: 0}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, 4, 1000, 10_000, nil)
			run(t, s, nil, c.ops)
			for b, want := range c.counts {
				if got := s.Count(blk(b)); got != want {
					t.Errorf("count of %d = %d, want %d", b, got, want)
				}
			}
			st := s.Stats()
			if st.PinnedBlocks != c.pinned || st.PinnedBytes != int64(c.pinned)*1000 {
				t.Errorf("pinned %d blocks %d bytes, want %d blocks", st.PinnedBlocks, st.PinnedBytes, c.pinned)
			}
		})
	}
}

func TestEvictionOrder(t *testing.T) {
	// Budget: 3 blocks of 1000 bytes.
	for _, c := range []struct {
		name     string
		ops      []op
		resident []int
		evicted  []int
	}{
		{"least recently used goes first", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 2, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s", block: 0},
			{kind: "unpin", sched: "A", sess: "s", block: 1},
			{kind: "unpin", sched: "A", sess: "s", block: 2},
			{kind: "pin", sched: "A", sess: "s", block: 3, want: Pinned},
		}, []int{1, 2, 3}, []int{0}},
		{"an open refreshes recency", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 2, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s", block: 0},
			{kind: "unpin", sched: "A", sess: "s", block: 1},
			{kind: "unpin", sched: "A", sess: "s", block: 2},
			{kind: "open", block: 0},
			{kind: "pin", sched: "A", sess: "s", block: 3, want: Pinned},
		}, []int{0, 2, 3}, []int{1}},
		{"pinned blocks are never evicted", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 2, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s", block: 1},
			{kind: "pin", sched: "A", sess: "s", block: 3, want: Pinned},
		}, []int{0, 2, 3}, []int{1}},
		{"a pin by another session keeps a block", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "B", sess: "t", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 2, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s", block: 0},
			{kind: "unpin", sched: "A", sess: "s", block: 2},
			{kind: "pin", sched: "A", sess: "s", block: 3, want: Pinned},
		}, []int{0, 1, 3}, []int{2}},
		{"repinning an unpinned block takes it off the list", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 2, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s", block: 0},
			{kind: "unpin", sched: "A", sess: "s", block: 1},
			{kind: "pin", sched: "A", sess: "u", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 3, want: Pinned},
		}, []int{0, 2, 3}, []int{1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, 5, 1000, 3000, nil)
			run(t, s, nil, c.ops)
			for _, b := range c.resident {
				if !s.Resident(blk(b)) {
					t.Errorf("block %d not resident", b)
				}
			}
			for _, b := range c.evicted {
				if s.Resident(blk(b)) {
					t.Errorf("block %d still resident", b)
				}
			}
			if st := s.Stats(); st.RAMBytes > 3000 {
				t.Errorf("RAM %d over budget", st.RAMBytes)
			}
		})
	}
}

func TestRefusal(t *testing.T) {
	for _, c := range []struct {
		name string
		ops  []op
		last op
	}{
		{"full of pinned blocks refuses", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
		}, op{kind: "pin", sched: "A", sess: "s", block: 2, want: Refused}},
		{"a pin on a resident block is accepted when full", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
		}, op{kind: "pin", sched: "B", sess: "t", block: 1, want: Pinned}},
		{"a repeat is not refused when full", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
		}, op{kind: "pin", sched: "A", sess: "s", block: 1, want: Repeated}},
		{"a cancel makes room", []op{
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "pin", sched: "A", sess: "s", block: 1, want: Pinned},
			{kind: "unpin", sched: "A", sess: "s", block: 0},
		}, op{kind: "pin", sched: "A", sess: "s", block: 2, want: Pinned}},
		{"lease expiry makes room", []op{
			{kind: "renew", sched: "A", d: time.Second},
			{kind: "pin", sched: "A", sess: "s", block: 0, want: Pinned},
			{kind: "renew", sched: "B", d: time.Minute},
			{kind: "pin", sched: "B", sess: "s", block: 1, want: Pinned},
			{kind: "advance", d: 2 * time.Second},
			{kind: "expire"},
		}, op{kind: "pin", sched: "B", sess: "s", block: 2, want: Pinned}},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := testkit.NewClock(time.Unix(1_800_000_000, 0))
			s := newStore(t, 4, 1000, 2000, clk)
			run(t, s, clk, append(c.ops, c.last))
			if st := s.Stats(); st.RAMBytes > 2000 || st.PinnedBytes > 2000 {
				t.Errorf("over budget: %+v", st)
			}
		})
	}
}

func TestLeaseExpiry(t *testing.T) {
	clk := testkit.NewClock(time.Unix(1_800_000_000, 0))
	s := newStore(t, 4, 100, 10_000, clk)
	ctx := context.Background()
	s.Renew("A", 2*time.Second)
	s.Renew("B", 5*time.Second)
	for _, p := range []struct {
		sched string
		pin   cluster.Pin
	}{{"A", pin("a1", 0)}, {"A", pin("a2", 0)}, {"A", pin("a1", 1)}, {"B", pin("b1", 0)}, {"B", pin("b1", 2)}} {
		if st := s.Pin(ctx, p.sched, p.pin); st != Pinned {
			t.Fatalf("pin %v: %v", p, st)
		}
	}
	for _, c := range []struct {
		advance time.Duration
		renewB  time.Duration
		expired []Expired
		counts  [3]int
	}{
		{time.Second, 0, nil, [3]int{3, 1, 1}},
		{1500 * time.Millisecond, 5 * time.Second, []Expired{{"A", 3}}, [3]int{1, 0, 1}},
		{4 * time.Second, 0, nil, [3]int{1, 0, 1}},
		{2 * time.Second, 0, []Expired{{"B", 2}}, [3]int{0, 0, 0}},
	} {
		clk.Add(c.advance)
		got := s.ExpireLeases()
		if fmt.Sprint(got) != fmt.Sprint(c.expired) {
			t.Errorf("after +%v: expired %v, want %v", c.advance, got, c.expired)
		}
		for i, want := range c.counts {
			if n := s.Count(blk(i)); n != want {
				t.Errorf("after +%v: count of %d = %d, want %d", c.advance, i, n, want)
			}
		}
		if c.renewB > 0 {
			s.Renew("B", c.renewB)
		}
	}
	st := s.Stats()
	if st.LeaseExpiries != 2 || st.PinsExpired != 5 || st.PinnedBlocks != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestOpenFromRAMAndDisk(t *testing.T) {
	s := newStore(t, 3, 50_000, 1<<20, nil)
	ctx := context.Background()
	if st := s.Pin(ctx, "A", pin("s", 1)); st != Pinned {
		t.Fatal(st)
	}
	waitIdle(t, s, 1)
	for _, c := range []struct {
		block   int
		fromRAM bool
	}{{1, true}, {0, false}, {2, false}} {
		b, err := s.Open(ctx, blk(c.block))
		if err != nil {
			t.Fatal(err)
		}
		if b.FromRAM != c.fromRAM || b.File() == nil {
			t.Errorf("block %d: fromRAM %v, file %v", c.block, b.FromRAM, b.File())
		}
		got, err := io.ReadAll(b.ReadSeeker())
		b.Close()
		if err != nil || !bytes.Equal(got, payload(c.block, 50_000)) {
			t.Errorf("block %d: bytes differ (%v)", c.block, err)
		}
	}
	if _, err := s.Open(ctx, blk(7)); !errors.Is(err, ErrNotFound) {
		t.Errorf("open of a missing block: %v", err)
	}
	st := s.Stats()
	if st.OpensRAM != 1 || st.OpensDisk != 2 || st.Blocks != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestConcurrentOpensShareOneRAMBlock(t *testing.T) {
	s := newStore(t, 1, 200_000, 1<<20, nil)
	ctx := context.Background()
	s.Pin(ctx, "A", pin("s", 0))
	waitIdle(t, s, 0)
	want := payload(0, 200_000)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				b, err := s.Open(ctx, blk(0))
				if err != nil {
					t.Error(err)
					return
				}
				got, _ := io.ReadAll(b.ReadSeeker())
				b.Close()
				if !bytes.Equal(got, want) || !b.FromRAM {
					t.Error("wrong bytes or not from RAM")
					return
				}
			}
		}()
	}
	// Unpin and evict while responses are open: they keep reading.
	s.Unpin("A", pin("s", 0))
	wg.Wait()
}

func TestAdmitOnMissIsPlainLRU(t *testing.T) {
	d, err := OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		d.PutBlock(ctx, blk(i), payload(i, 1000))
	}
	s, err := New(Options{Backend: d, RAMBudget: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		block   int
		fromRAM bool
	}{{0, false}, {0, true}, {1, false}, {1, true}, {2, false}, {0, false}, {2, true}} {
		b, err := s.Open(ctx, blk(c.block))
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if b.FromRAM != c.fromRAM {
			t.Errorf("block %d: fromRAM %v, want %v", c.block, b.FromRAM, c.fromRAM)
		}
		waitIdle(t, s, c.block)
	}
}

func TestPreloadIsSingleFlight(t *testing.T) {
	s := newStore(t, 1, 100_000, 1<<20, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s.Pin(ctx, "A", pin(fmt.Sprint("s", i), 0))
		}(i)
	}
	wg.Wait()
	waitIdle(t, s, 0)
	st := s.Stats()
	if st.Preloads != 1 || st.PinnedBlocks != 1 || st.Pins != 20 || s.Count(blk(0)) != 20 || st.RAMBytes != 100_000 {
		t.Errorf("stats %+v count %d", st, s.Count(blk(0)))
	}
}

func TestPutFirstCopyWins(t *testing.T) {
	d, err := OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if added, err := d.PutBlock(ctx, blk(0), []byte("one")); !added || err != nil {
		t.Fatal(added, err)
	}
	if added, err := d.PutBlock(ctx, blk(0), []byte("two")); added || err != nil {
		t.Fatal(added, err)
	}
	if _, err := d.PutBlock(ctx, cluster.BlockID{Point: "../x", Track: "t", Start: 1}, []byte("x")); err == nil {
		t.Error("invalid point accepted")
	}
	d2, err := OpenDisk(d.Dir())
	if err != nil || d2.Blocks() != 1 {
		t.Fatalf("reopen: %v, %d blocks", err, d2.Blocks())
	}
	if err := d.PutInit(ctx, "ch", "video_1000", []byte("init"), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	data, ct, err := d2.Init(ctx, "ch", "video_1000")
	if err != nil || string(data) != "init" || ct != "video/mp4" {
		t.Errorf("init %q %q %v", data, ct, err)
	}
}

func TestCopyRAMKeepsMappingUntilClose(t *testing.T) {
	d, err := OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		d.PutBlock(ctx, blk(i), payload(i, 100_000))
	}
	s, err := New(Options{Backend: d, RAMBudget: 100_000, CopyRAM: true, NoAdmitOnMiss: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Pin(ctx, "A", pin("s", 0))
	waitIdle(t, s, 0)
	b, err := s.Open(ctx, blk(0))
	if err != nil || !b.FromRAM || b.File() != nil {
		t.Fatalf("open: %v fromRAM=%v", err, b.FromRAM)
	}
	// Evict block 0 (unpin, then pin block 1 into the only slot) while the
	// response still reads the mapping.
	s.Unpin("A", pin("s", 0))
	if st := s.Pin(ctx, "A", pin("s", 1)); st != Pinned {
		t.Fatal(st)
	}
	waitIdle(t, s, 1)
	if s.Resident(blk(0)) {
		t.Fatal("block 0 not evicted")
	}
	got, err := io.ReadAll(b.ReadSeeker())
	b.Close()
	if err != nil || !bytes.Equal(got, payload(0, 100_000)) {
		t.Errorf("bytes of an evicted block still open differ: %v", err)
	}
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// readAll reads a whole RAM block from n concurrent responses, reps times
// each; every other response stops half way (its descriptor is given back
// mid-block). Unless ram, a response may come from mass storage.
func readAll(t *testing.T, s *Store, i, n, reps int, want []byte, ram bool) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < reps; j++ {
				b, err := s.Open(ctx, blk(i))
				if err != nil {
					t.Error(err)
					return
				}
				if (g+j)%2 == 0 {
					io.CopyN(io.Discard, b.ReadSeeker(), int64(len(want)/2))
					b.Close()
					continue
				}
				got, _ := io.ReadAll(b.ReadSeeker())
				b.Close()
				if !bytes.Equal(got, want) || ram && !b.FromRAM || b.File() == nil {
					t.Errorf("block %d: %d bytes, from RAM %v, file %v", i, len(got), b.FromRAM, b.File() != nil)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPinnedRAMBlockReusesDescriptors(t *testing.T) {
	s := newStore(t, 2, 200_000, 300_000, nil) // room for one block
	ctx := context.Background()
	openFDs(t)
	base := openFDs(t)

	s.Pin(ctx, "A", pin("s", 0))
	waitIdle(t, s, 0)
	b, err := s.Open(ctx, blk(0))
	if err != nil {
		t.Fatal(err)
	}
	f := b.File()
	io.CopyN(io.Discard, f, 1000)
	b.Close()
	b, err = s.Open(ctx, blk(0))
	if err != nil {
		t.Fatal(err)
	}
	if b.File() != f {
		t.Error("a pinned block's second response reopened it")
	}
	if pos, _ := b.File().Seek(0, io.SeekCurrent); pos != 0 {
		t.Errorf("reused descriptor at %d, want 0", pos)
	}
	b.Close()

	readAll(t, s, 0, 16, 20, payload(0, 200_000), true)
	s.mu.Lock()
	mem := s.entries[blk(0)].mem
	s.mu.Unlock()
	if n := mem.idleFiles(); n < 1 || n > maxIdleFiles {
		t.Errorf("%d idle descriptors, want 1..%d", n, maxIdleFiles)
	}
	if got, want := openFDs(t), base+1+mem.idleFiles(); got != want {
		t.Errorf("%d descriptors with block 0 pinned, want %d (memfd + idle)", got, want)
	}

	// Unpinned while responses run: the idle descriptors close, and the
	// responses' own close after them.
	done := make(chan struct{})
	go func() { readAll(t, s, 0, 8, 20, payload(0, 200_000), true); close(done) }()
	s.Unpin("A", pin("s", 0))
	<-done
	if n := mem.idleFiles(); n != 0 {
		t.Errorf("unpinned block keeps %d idle descriptors", n)
	}
	// Pinning block 1 evicts block 0 (one block of room).
	s.Pin(ctx, "A", pin("s", 1))
	waitIdle(t, s, 1)
	if got, want := openFDs(t), base+1; got != want {
		t.Errorf("%d descriptors after evicting block 0, want %d (block 1's memfd)", got, want)
	}

	// Store closed while responses of a pinned block run: the last one
	// gives its descriptor back to a block that is already dropped.
	var open []*Block
	for k := 0; k < 2; k++ {
		b, err := s.Open(ctx, blk(1))
		if err != nil || !b.FromRAM {
			t.Fatalf("open block 1: %v, from RAM %v", err, err == nil && b.FromRAM)
		}
		open = append(open, b)
	}
	done = make(chan struct{})
	go func() { readAll(t, s, 1, 8, 20, payload(1, 200_000), false); close(done) }()
	time.Sleep(time.Millisecond)
	s.Close()
	<-done
	for _, b := range open {
		b.Close()
	}
	if got := openFDs(t); got != base {
		t.Errorf("%d descriptors after closing the store, want %d", got, base)
	}
}

// BenchmarkOpenRAM is the store's part of a response of a pinned RAM block:
// Open (a descriptor with its own position), a Seek as http.ServeContent
// does, and Close.
// Run: go test -run '^$' -bench OpenRAM ./internal/blockstore
func BenchmarkOpenRAM(b *testing.B) {
	d, err := OpenDisk(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.PutBlock(ctx, blk(0), payload(0, 200_000)); err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Backend: d, RAMBudget: 1 << 20, NoAdmitOnMiss: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.Pin(ctx, "A", pin("s", 0))
	s.WaitLoaded(ctx, blk(0))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		blk, err := s.Open(ctx, blk(0))
		if err != nil || !blk.FromRAM {
			b.Fatal(err)
		}
		blk.ReadSeeker().Seek(0, io.SeekEnd)
		blk.Close()
	}
}
