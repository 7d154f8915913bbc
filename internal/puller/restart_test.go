package puller_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/config"
	"github.com/sluice-media/sluice/internal/manifest"
	"github.com/sluice-media/sluice/internal/puller"
	"github.com/sluice-media/sluice/internal/store"
	"github.com/sluice-media/sluice/internal/testkit"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// TestPullAcrossRestart: origins pulling an ingest across an encoder
// restart hold the ingest's fragments byte for byte, adopt its restart (so
// that their manifests split where the ingest's do) and, under the archive
// policy, archive the presentation before it as the ingest would.
func TestPullAcrossRestart(t *testing.T) {
	a := newIngest(t)
	a.mustPush(t, fixture(t))
	dir := t.TempDir()
	p := filepath.Join(dir, "c.ismv")
	testmedia.Run(t, testmedia.TinyISMVOtherArgs(4, "64x64", p))
	restarted, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	first := testkit.Snapshot(t, a.srv.Store, "live")
	o1 := startOrigin(t, []string{a.ts.URL}, 0)
	o2 := startOriginWith(t, []string{a.ts.URL}, 0, func(o *puller.Options) { o.OnRestart = config.RestartArchive })
	waitComplete(t, o1, first, 10*time.Second)
	waitComplete(t, o2, first, 10*time.Second)

	a.mustPush(t, restarted)
	pa, _ := a.srv.Store.Point("live")
	if len(pa.Restarts()) != 1 {
		t.Fatalf("ingest: %d restarts", len(pa.Restarts()))
	}
	all := testkit.Snapshot(t, a.srv.Store, "live")
	waitComplete(t, o1, all, 10*time.Second)
	p1, _ := o1.st.Point("live")
	deadline := time.Now().Add(5 * time.Second)
	for len(p1.Restarts()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !reflect.DeepEqual(p1.Restarts(), pa.Restarts()) {
		t.Fatalf("origin restarts %+v, ingest %+v", p1.Restarts(), pa.Restarts())
	}
	opts := manifest.Options{Now: time.Now(), LookAhead: 2}
	for name, render := range map[string]func(store.View, manifest.Options) ([]byte, error){
		"dash": manifest.DASH, "smooth": manifest.Smooth,
	} {
		m1, err1 := render(p1.View(0), opts)
		ma, erra := render(pa.View(0), opts)
		if err1 != nil || erra != nil || !bytes.Equal(m1, ma) {
			t.Errorf("%s manifests of origin and ingest differ (%v, %v)", name, err1, erra)
		}
	}
	for _, tv := range pa.View(0).Tracks {
		ma, _ := manifest.HLSMedia(pa.View(0), tv.ID, opts)
		m1, _ := manifest.HLSMedia(p1.View(0), tv.ID, opts)
		if !bytes.Equal(ma, m1) || !strings.Contains(string(m1), "#EXT-X-DISCONTINUITY\n") {
			t.Errorf("%s: HLS playlists differ or lack the restart:\n%s\n%s", tv.ID, ma, m1)
		}
	}

	// The archiving origin: the presentation before the restart is an
	// asset, the point holds the restarted session.
	deadline = time.Now().Add(10 * time.Second)
	var asset string
	for asset == "" {
		for _, n := range o2.st.Points() {
			if strings.HasPrefix(n, "live-") {
				asset = n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archiving origin made no asset: %v", o2.st.Points())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := testkit.Snapshot(t, o2.st, asset); !testkit.SameFragments(got, first) {
		t.Errorf("asset %s holds %d fragments, want the first push's %d", asset, len(got), len(first))
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		live := testkit.Snapshot(t, o2.st, "live")
		if len(live) == len(all)-len(first) {
			for k := range live {
				if _, old := first[k]; old {
					t.Fatalf("the archiving origin kept %s", k)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archiving origin's point holds %d fragments, want %d", len(live), len(all)-len(first))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
