package blockstore_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/sender"
	"github.com/sluice-media/sluice/internal/store"
)

// TestServeSenderRefusesDeletes: the local sender of `sluice serve` reads
// the origin's store, which prunes itself: a delete through its internal
// API is refused (409) and changes nothing.
func TestServeSenderRefusesDeletes(t *testing.T) {
	st, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b := blockstore.NewStoreBackend(st)
	id := cluster.BlockID{Point: "live/ch", Track: "video_1", Start: 0}
	if ok, err := b.DeleteBlock(context.Background(), id); ok || !errors.Is(err, blockstore.ErrReadOnly) {
		t.Fatalf("DeleteBlock: %v %v, want ErrReadOnly", ok, err)
	}
	bs, err := blockstore.New(blockstore.Options{Backend: b, RAMBudget: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	snd, err := sender.New(sender.Options{ID: "local", Secret: []byte("k"), Store: bs})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(snd.Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/internal/v1/delete",
		strings.NewReader(`{"blocks":[{"p":"live/ch","t":"video_1","s":0}]}`))
	clusterauth.NewKeys([]byte("k")).Sign(req, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("delete at the serve sender: %d, want 409", resp.StatusCode)
	}
}
