package sender

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testkit"
)

// TestLowLatencyParts: parts the origin forwards (PUT) are served from
// RAM to a session: a part, a hinted part that arrives while it is asked
// for, a block in progress streamed as its parts arrive and ended by the
// fragment's end, and a complete block from its parts until the block
// itself is stored. Bad uploads are refused with 400.
func TestLowLatencyParts(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	ctx := context.Background()
	if err := f.cli.PutInit(ctx, f.base, "live/ch", "video_800000", initData, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	id := blk(5)
	part := func(i int) []byte { return testkit.CMAFFragment(uint32(i), id.Start+int64(i)*1000, 1000, 300) }
	tok := token("sess-ll", secret)
	client := f.base + "/b/" + tok + "/live/ch/video_800000/"
	partURL := func(i int) string { return fmt.Sprintf("%spart-%d.m4s", client, id.Start+int64(i)*1000) }

	for _, c := range []struct {
		name  string
		index int
		data  []byte
	}{
		{"junk", 0, []byte("not a fragment at all")},
		{"two fragments", 0, append(part(0), part(1)...)},
	} {
		if err := f.cli.PutPart(ctx, f.base, id, c.index, c.data); err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("%s: %v, want 400", c.name, err)
		}
	}
	if err := f.cli.PutPart(ctx, f.base, id, 0, part(0)); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, partURL(0))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, part(0)) {
		t.Fatalf("part 0: %s, %d bytes", resp.Status, len(body))
	}

	// The next part, asked for before it exists, is answered when it
	// arrives.
	got := make(chan []byte, 1)
	go func() {
		_, b := get(t, partURL(1))
		got <- b
	}()
	// The block in progress streams: part 0 at once, the rest as they
	// come, ending with the fragment's end.
	growing := make(chan []byte, 1)
	go func() {
		_, b := get(t, client+fmt.Sprint(id.Start)+".m4s")
		growing <- b
	}()
	time.Sleep(100 * time.Millisecond)
	if err := f.cli.PutPart(ctx, f.base, id, 1, part(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, part(1)) {
			t.Errorf("hinted part: %d bytes, want part 1", len(b))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hinted part was not answered when it arrived")
	}
	select {
	case b := <-growing:
		t.Fatalf("the block in progress ended before its fragment did (%d bytes)", len(b))
	case <-time.After(100 * time.Millisecond):
	}
	if err := f.cli.EndParts(ctx, f.base, id, id.Start+2000); err != nil {
		t.Fatal(err)
	}
	whole := append(part(0), part(1)...)
	select {
	case b := <-growing:
		if !bytes.Equal(b, whole) {
			t.Errorf("block in progress: %d bytes, want its two parts (%d)", len(b), len(whole))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the block in progress did not end with its fragment")
	}
	// Complete, not yet stored here: from its parts, with a length.
	resp, body = get(t, client+fmt.Sprint(id.Start)+".m4s")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, whole) || resp.ContentLength != int64(len(whole)) {
		t.Errorf("complete block from parts: %s, %d bytes, length %d", resp.Status, len(body), resp.ContentLength)
	}
	// A part not kept is a 404; one past a complete fragment's end waits
	// and times out only after partWait (not asked here).
	if resp, _ := get(t, partURL(-50)); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a part not kept: %s", resp.Status)
	}
	if n := testkit.Sum(t, f.s.reg, "sluice_sender_parts_total", "result=ram"); n != 2 {
		t.Errorf("parts from RAM counted: %v, want 2", n)
	}
	if n := testkit.Sum(t, f.s.reg, "sluice_sender_parts_total", "result=growing"); n != 2 {
		t.Errorf("blocks from parts counted: %v, want 2", n)
	}
	if n := testkit.Sum(t, f.s.reg, "sluice_sender_invalid_uploads_total", "kind=part"); n != 2 {
		t.Errorf("invalid parts counted: %v, want 2", n)
	}
}
