package placement

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/membership"
)

// fakeSender records the blocks and inits PUT to it.
type fakeSender struct {
	mu     sync.Mutex
	blocks map[string]string
	inits  map[string]string
	fail   int // fail this many requests first
}

func (f *fakeSender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := (&clusterauth.Verifier{Keys: clusterauth.NewKeys([]byte("k"))}).Verify(r); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if f.fail > 0 {
		f.fail--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case strings.HasPrefix(r.URL.Path, "/internal/v1/blocks/"):
		f.blocks[strings.TrimPrefix(r.URL.Path, "/internal/v1/blocks/")] = string(body)
		w.WriteHeader(http.StatusCreated)
	case strings.HasPrefix(r.URL.Path, "/internal/v1/init/"):
		f.inits[strings.TrimPrefix(r.URL.Path, "/internal/v1/init/")] = r.Header.Get("Content-Type")
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// changingSet is a membership.Set the test changes.
type changingSet struct {
	mu      sync.Mutex
	ms      []membership.Member
	changed chan struct{}
}

func (s *changingSet) Members() []membership.Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]membership.Member(nil), s.ms...)
}

func (s *changingSet) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *changingSet) set(ms []membership.Member) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ms = ms
	close(s.changed)
	s.changed = make(chan struct{})
}

func TestWriterPlacesBlocksOnOwnersAndInitsEverywhere(t *testing.T) {
	var ms []membership.Member
	fakes := map[string]*fakeSender{}
	for _, id := range []string{"a", "b", "c", "d"} {
		f := &fakeSender{blocks: map[string]string{}, inits: map[string]string{}}
		if id == "b" {
			f.fail = 2 // retried
		}
		srv := httptest.NewServer(f)
		t.Cleanup(srv.Close)
		fakes[id] = f
		ms = append(ms, membership.Member{ID: id, URL: srv.URL})
	}
	set := &changingSet{ms: ms[:3], changed: make(chan struct{})}
	w, err := NewWriter(WriterOptions{Members: set, Replicas: 2, Client: NewClient([]byte("k"), nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	const n = 60
	for i := 0; i < n; i++ {
		id := cluster.BlockID{Point: "live/ch", Track: "video_1", Start: int64(i)}
		if !w.Enqueue(id, []byte(fmt.Sprint("data ", i)), func() ([]byte, string, error) { return []byte("init"), "video/mp4", nil }) {
			t.Fatal("queue full")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Blocks < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := w.Stats(); st.Blocks != n || st.Copies != 2*n || st.Failures != 0 || st.Inits != 3 {
		t.Fatalf("stats %+v", st)
	}
	for i := 0; i < n; i++ {
		id := cluster.BlockID{Point: "live/ch", Track: "video_1", Start: int64(i)}
		owners := Owners(ms[:3], id, 2)
		var holders []string
		for _, m := range ms {
			if _, ok := fakes[m.ID].blocks[id.Key()]; ok {
				holders = append(holders, m.ID)
			}
		}
		want := []string{owners[0].ID, owners[1].ID}
		sort.Strings(want)
		if strings.Join(holders, ",") != strings.Join(want, ",") {
			t.Errorf("block %d on %v, owners %v", i, holders, want)
		}
	}
	// A sender that joins gets every init the writer knows.
	set.set(ms)
	deadline = time.Now().Add(5 * time.Second)
	for {
		fakes["d"].mu.Lock()
		ct := fakes["d"].inits["live/ch/video_1"]
		fakes["d"].mu.Unlock()
		if ct == "video/mp4" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new sender did not get the init")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWriteBlockReportsOwnerFailures(t *testing.T) {
	down := &fakeSender{blocks: map[string]string{}, inits: map[string]string{}, fail: 100}
	up := &fakeSender{blocks: map[string]string{}, inits: map[string]string{}}
	s1, s2 := httptest.NewServer(down), httptest.NewServer(up)
	defer s1.Close()
	defer s2.Close()
	set, _ := membership.Static(membership.Member{ID: "down", URL: s1.URL}, membership.Member{ID: "up", URL: s2.URL})
	w, _ := NewWriter(WriterOptions{Members: set, Replicas: 2, Client: NewClient([]byte("k"), nil), Retries: 1})
	owners, err := w.WriteBlock(context.Background(), cluster.BlockID{Point: "p", Track: "t", Start: 1}, []byte("x"))
	// With two senders and R = 2 there is no later owner to fall back to:
	// the block is on the one that took it, and the error says so.
	if len(owners) != 1 || owners[0] != "up" || err == nil || !strings.Contains(err.Error(), "sender down") {
		t.Errorf("owners %v err %v", owners, err)
	}
	if st := w.Stats(); st.Blocks != 1 || st.Copies != 1 || st.Failures != 1 {
		t.Errorf("stats %+v", st)
	}
}
