package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
)

// TestDeleteAPI: POST /internal/v1/delete needs the cluster secret, refuses
// bad input with a 4xx before deleting anything, and counts deleted,
// absent and deferred (pinned) blocks.
func TestDeleteAPI(t *testing.T) {
	f := newFixture(t, 1<<20, false)
	f.put(t, 4, 10_000)
	ids := func(is ...int) string {
		var req cluster.DeleteRequest
		for _, i := range is {
			req.Blocks = append(req.Blocks, blk(i))
		}
		b, _ := json.Marshal(req)
		return string(b)
	}
	many := make([]cluster.BlockID, cluster.MaxDeleteBlocks+1)
	for i := range many {
		many[i] = blk(i)
	}
	tooMany, _ := json.Marshal(cluster.DeleteRequest{Blocks: many})
	for _, c := range []struct {
		name, secret, body string
		want               int
	}{
		{"no secret", "", ids(0), 401},
		{"wrong secret", "nope", ids(0), 401},
		{"not JSON", string(secret), "{", 400},
		{"no blocks", string(secret), `{"blocks":[]}`, 400},
		{"invalid block", string(secret), `{"blocks":[{"p":"live/ch","t":"video_800000","s":0},{"p":"../x","t":"v","s":1}]}`, 400},
		{"too many blocks", string(secret), string(tooMany), 413},
		{"body too large", string(secret), `{"blocks":[` + strings.Repeat(" ", 9<<20) + `]}`, 413},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.base+"/internal/v1/delete", strings.NewReader(c.body))
		if c.secret != "" {
			clusterauth.NewKeys([]byte(c.secret)).Sign(req, time.Now())
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, b, c.want)
		}
	}
	// Nothing was deleted by the refused requests (the invalid one named
	// block 0 first).
	if n := f.s.Stats().Blocks; n != 4 {
		t.Fatalf("%d blocks after refused deletes, want 4", n)
	}

	ctx := context.Background()
	// Block 1 is pinned by a session: deferred.
	res, err := f.s.Apply(ctx, cluster.Batch{Scheduler: "sch", Lease: time.Minute,
		LookAhead: []cluster.Pin{{Session: "s1", Block: blk(1)}}})
	if err != nil || len(res.Refused)+len(res.Missing) != 0 {
		t.Fatalf("pin: %+v %v", res, err)
	}
	f.st.WaitLoaded(ctx, blk(1))
	got, err := f.cli.Delete(ctx, f.base, []cluster.BlockID{blk(0), blk(1), blk(2), blk(9)})
	if err != nil {
		t.Fatal(err)
	}
	if want := (cluster.DeleteResult{Deleted: 2, Absent: 1, Deferred: 1}); got != want {
		t.Errorf("delete: %+v, want %+v", got, want)
	}
	if n := f.s.Stats().Blocks; n != 1 {
		t.Errorf("%d blocks on disk after the delete, want 1", n)
	}
	// The pinned block is still served to its session; a deleted one is
	// not; the header stays.
	tok := token("s1", time.Now().Add(time.Minute), secret, "video_800000")
	for _, c := range []struct {
		path string
		want int
	}{
		{fmt.Sprintf("/b/%s/live/ch/video_800000/%d.m4s", tok, blk(1).Start), 200},
		{fmt.Sprintf("/b/%s/live/ch/video_800000/%d.m4s", tok, blk(0).Start), 404},
		{fmt.Sprintf("/b/%s/live/ch/video_800000/%d.m4s", tok, blk(3).Start), 200},
		{fmt.Sprintf("/b/%s/live/ch/video_800000/init.mp4", tok), 200},
	} {
		if resp, _ := get(t, f.base+c.path); resp.StatusCode != c.want {
			t.Errorf("GET %s: %d, want %d", c.path, resp.StatusCode, c.want)
		}
	}
	// A new pin of the deleted block is missing; the session's cancel lets
	// its RAM copy go.
	res, _ = f.s.Apply(ctx, cluster.Batch{Scheduler: "sch", Lease: time.Minute,
		LookAhead: []cluster.Pin{{Session: "s2", Block: blk(1)}},
		Cancel:    []cluster.Pin{{Session: "s1", Block: blk(1)}}})
	if len(res.Missing) != 1 {
		t.Errorf("pin of a deleted block: %+v, want it missing", res)
	}
	if f.st.Resident(blk(1)) {
		t.Error("the deleted block stayed in RAM after its last pin went")
	}
	_, body := get(t, f.base+"/metrics")
	for _, want := range []string{
		`sluice_sender_deleted_blocks_total{result="deleted"} 2`,
		`sluice_sender_deleted_blocks_total{result="absent"} 1`,
		`sluice_sender_deleted_blocks_total{result="deferred"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
