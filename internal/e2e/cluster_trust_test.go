package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/membership"
	"github.com/sluice-media/sluice/internal/placement"
	"github.com/sluice-media/sluice/internal/testmedia"
)

// impostor is a fake cluster member: a listener that answers everything
// with 200 and records what it receives.
type impostor struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
	raw []*http.Request
}

func startImpostor(t *testing.T) *impostor {
	im := &impostor{}
	im.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		im.mu.Lock()
		im.got = append(im.got, fmt.Sprintf("%s %s (%d bytes, headers %v)", r.Method, r.URL, len(body), r.Header))
		im.raw = append(im.raw, r.Clone(context.Background()))
		im.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(im.srv.Close)
	return im
}

func (im *impostor) requests() ([]string, []*http.Request) {
	im.mu.Lock()
	defer im.mu.Unlock()
	return append([]string(nil), im.got...), append([]*http.Request(nil), im.raw...)
}

// TestClusterFakeMember is the regression test of the membership proof (docs/cluster.md): an
// attacker who can write under the sender prefix in etcd (it holds the
// senders' etcd credentials, etcd runs with TLS and authentication)
// registers a listener of its own as a sender — unsigned, with a forged
// signature, and as a copy of a real sender's signed record with its URL
// put in — before and after the origin and the scheduler start. Before
// the fix the origin and the scheduler sent such a member 87 requests
// within a second, with the cluster secret in clear, uploaded blocks to it
// and named it in players' segment URLs. Now: it receives nothing at all
// (no secret, no block, no signed request it could reuse), no manifest
// names it, the origin and the scheduler log and count the ignored
// records, and the real senders refuse what it can send them without the
// key (unsigned requests, the old secret header, a random block).
func TestClusterFakeMember(t *testing.T) {
	longTest(t)
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	t0 := time.Now()
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	etcd := startEtcdServer(t)
	im := startImpostor(t)
	imHost := strings.TrimPrefix(im.srv.URL, "http://")
	attacker := etcd.client(t, etcdSenderUser, etcd.senderPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	put := func(key, val string) {
		t.Helper()
		if _, err := attacker.Put(ctx, membership.DefaultPrefix+key, val); err != nil {
			t.Fatalf("the attacker's put of %s: %v", key, err)
		}
	}
	// Registered before anyone starts: an unsigned record, as the old
	// senders wrote them.
	put("aa-fake", `{"id":"aa-fake","url":"`+im.srv.URL+`"}`)

	reg := append([]string{"--etcd-ttl", "2s", "--ram", "16M"}, etcd.senderArgs()...)
	var ss []*clSender
	for _, name := range []string{"sender-a", "sender-b"} {
		ss = append(ss, startClSender(t, bin, name, filepath.Join(tmp, name), reg...))
	}
	// A forged signature, and a real sender's signed record with the
	// impostor's URL put in.
	other := clusterauth.NewKeys([]byte("a guess"))
	now := time.Now().Unix()
	put("ab-forged", fmt.Sprintf(`{"id":"ab-forged","url":%q,"time":%d,"sig":%q}`, im.srv.URL, now, other.SignMember("ab-forged", im.srv.URL, now)))
	resp, err := attacker.Get(ctx, membership.DefaultPrefix+ss[0].addr)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the attacker reads sender-a's record: %v", err)
	}
	var rec map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	if rec["sig"] == nil {
		t.Fatalf("sender-a's record is not signed: %s", resp.Kvs[0].Value)
	}
	rec["url"] = im.srv.URL
	copied, _ := json.Marshal(rec)
	put("ac-copied", string(copied))

	data := filepath.Join(tmp, "origin-data")
	originBase, origin := startOrigin(t, bin, data, append([]string{"--point", "live", "--replicas", "2", "--cluster-secret", e2eClusterSecret},
		etcd.readerArgs()...)...)
	sched := startClSched(t, bin, "scheduler", originBase, append(etcd.readerArgs(), "--replicas", "2")...)
	// And one more while they run (their etcd watch).
	put("ad-late", `{"id":"ad-late","url":"`+im.srv.URL+`"}`)

	out, err := exec.Command(bin, "push", "--fast", "--duration", "8s", testmedia.Sample(t), originBase+"/live.isml/Streams(ch)").CombinedOutput()
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	// The origin forwarded the fragments to the real senders.
	cli := placement.NewClient([]byte(e2eClusterSecret), nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		held := 0
		for _, s := range ss {
			if st, err := cli.Stats(ctx, s.base); err == nil {
				held += st.Blocks
			}
		}
		if held > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the real senders hold no block 30 s after the push")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Sessions, DASH and HLS: no manifest names the impostor.
	var manifests [][]byte
	code, mpd := get(t, sched.base+"/s/live/manifest.mpd")
	if code != 200 {
		t.Fatalf("DASH session: %d %s", code, mpd)
	}
	manifests = append(manifests, mpd)
	code, master := get(t, sched.base+"/s/live/master.m3u8")
	if code != 200 {
		t.Fatalf("HLS session: %d %s", code, master)
	}
	manifests = append(manifests, master)
	for _, line := range strings.Split(string(master), "\n") {
		if strings.HasPrefix(line, "/s/") {
			_, pl := get(t, sched.base+strings.TrimSpace(line))
			manifests = append(manifests, pl)
		}
	}
	senderURL := regexp.MustCompile(`https?://[^/"\s]+/b/`)
	urls := 0
	for _, m := range manifests {
		if bytes.Contains(m, []byte(imHost)) {
			t.Errorf("a player manifest names the impostor %s:\n%s", imHost, m)
		}
		for _, u := range senderURL.FindAllString(string(m), -1) {
			urls++
			if !strings.Contains(u, ss[0].addr) && !strings.Contains(u, ss[1].addr) {
				t.Errorf("segment URL %s names no real sender", u)
			}
		}
	}
	if urls == 0 {
		t.Fatalf("the sessions name no segment URL:\n%s", bytes.Join(manifests, []byte("\n")))
	}
	// The origin and the scheduler saw every fake record and ignored it.
	for _, c := range []struct {
		name, base string
		p          *proc
	}{{"origin", originBase, origin}, {"scheduler", sched.base, sched.p}} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := metricSum(t, c.base, "sluice_cluster_member_rejections_total")
			if n >= 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s counted %v ignored records, want 4 (unsigned, forged, copied, late)", c.name, n)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(c.p.out.String(), "record ignored") {
			t.Errorf("%s did not log the ignored records", c.name)
		}
	}

	// The impostor received nothing: no secret, no block, no signed
	// request it could replay elsewhere, not even a challenge (its
	// records are not signed with the cluster key).
	got, raw := im.requests()
	for _, r := range raw {
		switch {
		case r.Header.Get("Sluice-Cluster-Secret") != "":
			t.Errorf("the impostor received the cluster secret: %s %s", r.Method, r.URL)
		case r.Method == http.MethodPut:
			t.Errorf("the impostor received an upload: %s %s", r.Method, r.URL)
		case r.Header.Get(clusterauth.Header) != "":
			t.Errorf("the impostor received a signed request: %s %s", r.Method, r.URL)
		}
	}
	if len(got) != 0 {
		t.Errorf("the impostor received %d requests:\n%s", len(got), strings.Join(got, "\n"))
	}

	// What the attacker can send a real sender without the key: refused.
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	blockURL := placement.BlockURL(ss[0].base, cluster.BlockID{Point: "live", Track: "video_x", Start: 0})
	for _, c := range []struct {
		name string
		hdr  map[string]string
	}{
		{"unsigned", nil},
		{"the secret header of old", map[string]string{"Sluice-Cluster-Secret": e2eClusterSecret}},
	} {
		req, _ := http.NewRequest(http.MethodPut, blockURL, bytes.NewReader(junk))
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a random block PUT (%s) to a real sender: %d, want 401", c.name, resp.StatusCode)
		}
	}
	// Even signed (a holder of the key), a random body is not a block.
	if _, err := cli.PutBlock(ctx, ss[0].base, cluster.BlockID{Point: "live", Track: "video_x", Start: 0}, junk); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a signed random block: %v, want 400", err)
	}
	t.Logf("impostor requests: %d; segment URLs checked: %d; took %v", len(got), urls, time.Since(t0).Round(100*time.Millisecond))
}

// metricSum reads base/metrics and adds up the samples of a metric.
func metricSum(t *testing.T, base, name string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
