package e2e

// cluster_statuspage_test.go: the status pages of a standalone `sluice
// scheduler` and `sluice sender` in Chromium.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterPage is the cluster panel of a status.json (webui.ClusterStatus).
type clusterPage struct {
	Role     string `json:"role"`
	Sessions int    `json:"sessions"`
	Senders  []struct {
		ID           string  `json:"id"`
		Blocks       int     `json:"blocks"`
		RAMBytes     int64   `json:"ram_bytes"`
		RAMBudget    int64   `json:"ram_budget"`
		PinnedBlocks int     `json:"pinned_blocks"`
		Sessions     int     `json:"sessions"`
		HitRatio     float64 `json:"ram_hit_ratio"`
		Refused      int64   `json:"refused_lookaheads"`
	} `json:"senders"`
}

// fetchClusterPage reads the cluster panel of base's /status.json and
// fails the test when the body names a secret of the cluster.
func fetchClusterPage(t *testing.T, base string, secrets []string) (clusterPage, error) {
	t.Helper()
	resp, err := http.Get(base + "/status.json")
	if err != nil {
		return clusterPage{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return clusterPage{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return clusterPage{}, fmt.Errorf("%s/status.json: %s", base, resp.Status)
	}
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Fatalf("%s/status.json shows a secret (%.12q…):\n%s", base, s, b)
		}
	}
	var s struct {
		Cluster *clusterPage `json:"cluster"`
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Cluster == nil {
		return clusterPage{}, fmt.Errorf("%s/status.json has no cluster panel (%v): %.200s", base, err, b)
	}
	return *s.Cluster, nil
}

// TestClusterStatusPages: a real scheduler and two real senders (R = 2,
// membership in etcd) serving an imported asset, one HLS session whose
// segments are fetched from the senders. Each process's status page, in
// Chromium after its own poll re-rendered the panel, shows the cluster
// panel: the sender's page its own RAM used / budget, pinned blocks,
// sessions, blocks held, RAM hit ratio and refused look-aheads, as its
// stats count them; the scheduler's page its session and both senders
// with the same figures. No publishing points and no player on either
// page; neither the pages nor status.json show the cluster secret, the
// etcd passwords or the session's token. The three pages are read in
// one browser; screenshots are saved as statuspage-scheduler.png and
// statuspage-sender-<i>.png in the artifacts.
func TestClusterStatusPages(t *testing.T) {
	browserEnabled(t)
	requireTools(t, "node", "npm")
	root := repoRoot(t)
	webDir := filepath.Join(root, "web")
	ensureNodeModules(t, webDir)
	art := artifactsDir(t)
	tmp := t.TempDir()
	t0 := time.Now()
	bin := buildSluice(t, root, tmp)

	data := shmDir(t, "origin")
	runAll(t, 1, [][]string{{bin, "import", "--quiet", "--data", data, filepath.Join(root, "testdata", "sample", "sample.mp4"), "vod"}})
	etcd := startEtcdServer(t)
	const ramBudget = "32M"
	var senders []*clSender
	for i := range 2 {
		name := fmt.Sprintf("sender-%d", i)
		senders = append(senders, startClSender(t, bin, name, shmDir(t, name),
			append([]string{"--id", name, "--ram", ramBudget, "--etcd-ttl", "2s"}, etcd.senderArgs()...)...))
	}
	runAll(t, 1, [][]string{append(append([]string{bin, "sender-load"}, etcd.readerArgs()...),
		"--replicas", "2", "--cluster-secret", e2eClusterSecret, data, "vod")})
	originAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	origin := startProc(t, "origin", filepath.Join(art, "origin.log"), bin, "origin", "--listen", originAddr,
		"--data", data, "--cluster-secret", e2eClusterSecret)
	waitHTTP(t, "http://"+originAddr+"/healthz", 30*time.Second, origin)
	// The session must outlive a slow browser start on a loaded machine.
	sched := startClSched(t, bin, "scheduler", "http://"+originAddr, append(etcd.readerArgs(), "--replicas", "2", "--session-idle", "10m")...)
	t.Logf("cluster up after %v", time.Since(t0).Round(time.Millisecond))

	// One session, played a little: per track the init segment and the
	// first segment from its default pathway's sender, the second from
	// the other sender (any sender holding a block serves it to the
	// session), so that both send and the look-aheads ahead stay pinned.
	var segs []sessSegment
	waitUntil(t, 30*time.Second, "a session of the asset lists its segments", func() (bool, string) {
		segs = sessionSegments(t, sched.base, "vod", "")
		return minSegmentsPerTrack(segs) >= 4, fmt.Sprintf("%d URLs", len(segs))
	})
	nth := map[string]int{}
	for _, s := range segs {
		u := s.url
		if s.file != "init.mp4" {
			nth[s.track]++
		}
		switch n := nth[s.track]; {
		case n > 2:
			continue
		case n == 2:
			u = otherSender(t, u, senders)
		}
		if code, _ := distGet(t, u); code != http.StatusOK {
			t.Fatalf("GET %s: %d", u, code)
		}
	}
	token := regexp.MustCompile(`/b/([^/]+)/`).FindStringSubmatch(segs[0].url)
	if token == nil {
		t.Fatalf("no token in the segment URL %s", segs[0].url)
	}
	secrets := []string{e2eClusterSecret, etcd.senderPassword, etcd.readerPassword, etcd.rootPassword, token[1]}

	// Each sender counts the session and the sends; the scheduler's panel
	// reports the same figures.
	want := map[string]string{} // sender ID -> its row's cells from sessions on
	waitUntil(t, 30*time.Second, "the scheduler's panel agrees with the senders' own", func() (bool, string) {
		sc, err := fetchClusterPage(t, sched.base, secrets)
		if err != nil {
			return false, err.Error()
		}
		if sc.Role != "scheduler" || sc.Sessions != 1 || len(sc.Senders) != 2 {
			return false, fmt.Sprintf("scheduler panel %+v", sc)
		}
		var ram int64
		var pinned int
		for i, s := range senders {
			own, err := fetchClusterPage(t, s.base, secrets)
			if err != nil {
				return false, err.Error()
			}
			if own.Role != "sender" || len(own.Senders) != 1 || own.Senders[0].ID != s.name {
				return false, fmt.Sprintf("%s panel %+v", s.name, own)
			}
			o, r := own.Senders[0], sc.Senders[i]
			if own.Sessions != 1 || o.Sessions != 1 || o.Blocks == 0 {
				return false, fmt.Sprintf("%s panel %+v", s.name, own)
			}
			if r.ID != o.ID || r.Sessions != o.Sessions || r.Blocks != o.Blocks || r.HitRatio != o.HitRatio || r.Refused != o.Refused || r.RAMBudget != o.RAMBudget {
				return false, fmt.Sprintf("scheduler shows %+v, %s its own %+v", r, s.name, o)
			}
			ram += o.RAMBytes
			pinned += o.PinnedBlocks
			hit := "-"
			if o.HitRatio >= 0 {
				hit = strconv.FormatFloat(100*o.HitRatio, 'f', 1, 64) + " %"
			}
			want[o.ID] = fmt.Sprintf("%d\t%d\t%s\t%d", o.Sessions, o.Blocks, hit, o.Refused)
		}
		return ram > 0 && pinned > 0, fmt.Sprintf("%d bytes in the senders' RAM, %d blocks pinned", ram, pinned)
	})

	t.Logf("panels agree after %v", time.Since(t0).Round(time.Millisecond))

	// The pages in Chromium, each in a tab of one browser, after the
	// page's poll (every 2 s) rendered the panel again.
	type statusPage struct {
		name, base string
		want       []string
		rows       []string // the senders it lists
	}
	pgs := []statusPage{{"scheduler", sched.base, []string{"Sluice scheduler", "1 session(s) at this scheduler", "2 sender(s) reporting"},
		[]string{senders[0].name, senders[1].name}}}
	for _, s := range senders {
		pgs = append(pgs, statusPage{s.name, s.base, []string{"Sluice sender", "1 session(s) valid at this sender"}, []string{s.name}})
	}
	args := []string{filepath.Join(webDir, "test", "page.mjs"), "--pages", "3"}
	for _, pg := range pgs {
		args = append(args, pg.base+"/="+filepath.Join(art, "statuspage-"+pg.name+".png"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Env = append(cmd.Environ(), "SLUICE_CHROMIUM="+chromiumPath())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("page.mjs: %v\n%s", err, out)
	}
	var reports []pageReport
	if err := json.Unmarshal(out, &reports); err != nil || len(reports) != len(pgs) {
		t.Fatalf("page.mjs output (%v): %s", err, out)
	}
	t.Logf("pages read after %v", time.Since(t0).Round(time.Millisecond))
	for i, pg := range pgs {
		r := reports[i]
		t.Logf("%s page:\n%s", pg.name, r.Text)
		for _, w := range append(pg.want, "Cluster", "RAM used / budget", "pinned", "sessions", "blocks held", "RAM hit ratio", "refused look-aheads") {
			if !strings.Contains(r.Text, w) {
				t.Errorf("the %s page does not show %q", pg.name, w)
			}
		}
		for _, not := range []string{"Publishing points", "publishing point(s)", "players", "Player"} {
			if strings.Contains(r.Text, not) {
				t.Errorf("the %s page shows %q", pg.name, not)
			}
		}
		for _, s := range secrets {
			if strings.Contains(r.Text, s) {
				t.Errorf("the %s page shows a secret (%.12q…)", pg.name, s)
			}
		}
		// A sender's row: ID, RAM used / budget, pinned, then the figures
		// its own stats gave (sessions, blocks held, hit ratio, refused).
		for _, id := range pg.rows {
			row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\t([0-9.]+) / 32\.0 MiB\t([0-9]+) blocks, ([0-9.]+) MiB\t(.*)$`).FindStringSubmatch(r.Text)
			if row == nil {
				t.Errorf("the %s page has no row for %s with RAM used / 32.0 MiB and pinned blocks", pg.name, id)
				continue
			}
			if got := strings.TrimSpace(row[4]); got != want[id] {
				t.Errorf("the %s page shows %s with %q (sessions, blocks held, hit ratio, refused), its stats %q", pg.name, id, got, want[id])
			}
		}
		for _, c := range r.Console {
			if strings.HasPrefix(c, "error") || strings.HasPrefix(c, "pageerror") {
				t.Errorf("%s page console: %s", pg.name, c)
			}
		}
	}
	t.Logf("done after %v", time.Since(t0).Round(time.Millisecond))
}

// otherSender is u (a URL at one of senders) at the other sender of two.
func otherSender(t *testing.T, u string, senders []*clSender) string {
	t.Helper()
	for i, s := range senders {
		if strings.HasPrefix(u, s.base+"/") {
			return senders[1-i].base + strings.TrimPrefix(u, s.base)
		}
	}
	t.Fatalf("%s is at none of the senders", u)
	return ""
}
