package membership

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-media/sluice/internal/clusterauth"
)

var (
	trustKeys = clusterauth.NewKeys([]byte("cluster-secret"))
	evilKeys  = clusterauth.NewKeys([]byte("guessed"))
)

type reasons struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *reasons) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[reason]++
}

func (r *reasons) get(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

func waitMembers(t *testing.T, s Set, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		ch := s.Changed()
		if got := IDsString(s.Members()); got == want {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("members %q, want %q within %v", IDsString(s.Members()), want, timeout)
		}
	}
}

// IDsString joins the IDs of ms with commas.
func IDsString(ms []Member) string {
	out := ""
	for i, m := range ms {
		if i > 0 {
			out += ","
		}
		out += m.ID
	}
	return out
}

// TestEtcdIgnoresUnsignedRecords: with the cluster key, the etcd set holds
// only members whose records are signed with it; unsigned, forged, edited
// and malformed records (anyone with write access to the prefix can put
// them) are ignored and counted, and a signed record overwritten with an
// unsigned one leaves the set.
func TestEtcdIgnoresUnsignedRecords(t *testing.T) {
	cu := startEtcd(t)
	var rej reasons
	cfg := EtcdConfig{Endpoints: []string{cu}, Prefix: "/test/senders/", Keys: trustKeys, Rejected: rej.add}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	set, err := Etcd(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	reg, err := Register(ctx, cfg, Member{ID: "s1", URL: "http://127.0.0.1:9001"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	waitMembers(t, set, "s1", 10*time.Second)

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	now := time.Now().Unix()
	signed := trustKeys.SignMember("s1", "http://127.0.0.1:9001", now)
	for key, val := range map[string]string{
		"evil":   `{"id":"evil","url":"http://127.0.0.1:6666"}`,
		"forged": `{"id":"forged","url":"http://127.0.0.1:6666","time":1,"sig":"` + evilKeys.SignMember("forged", "http://127.0.0.1:6666", 1) + `"}`,
		"edited": `{"id":"s1","url":"http://127.0.0.1:6666","time":` + strconv.FormatInt(now, 10) + `,"sig":"` + signed + `"}`,
		"junk":   `not a record`,
	} {
		if _, err := cli.Put(ctx, cfg.Prefix+key, val); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for rej.get("unsigned")+rej.get("bad_signature")+rej.get("malformed") < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if rej.get("unsigned") < 1 || rej.get("bad_signature") < 2 || rej.get("malformed") < 1 {
		t.Fatalf("rejections %v", rej.n)
	}
	if got := IDsString(set.Members()); got != "s1" {
		t.Fatalf("members %q with forged records in etcd", got)
	}
	// Overwriting the real sender's record with an unsigned one takes it
	// out (it comes back with its next registration).
	if _, err := cli.Put(ctx, reg.Key(), `{"id":"s1","url":"http://127.0.0.1:6666"}`); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, set, "", 10*time.Second)
}

// TestProven: a member is in the proven set only once it answered a
// challenge with a proof of the cluster key for its own URL; one that
// answers with another key, or relays a real member's answer, is kept out
// and counted; one that does not answer yet joins when it does.
func TestProven(t *testing.T) {
	proofServer := func(k clusterauth.Keys) *httptest.Server {
		var srv *httptest.Server
		srv = httptest.NewServer(k.ProofHandler(func() (string, string) { return "x", srv.URL }))
		t.Cleanup(srv.Close)
		return srv
	}
	good := proofServer(trustKeys)
	wrong := proofServer(evilKeys)
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, good.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer relay.Close()
	// A member whose address answers only later.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lateURL := "http://" + ln.Addr().String()
	ln.Close()

	inner, err := Static(Member{"good", good.URL}, Member{"wrong", wrong.URL}, Member{"relay", relay.URL}, Member{"late", lateURL})
	if err != nil {
		t.Fatal(err)
	}
	var rej reasons
	var mu sync.Mutex
	challenged := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := Proven(ctx, inner, ProveConfig{
		Prove: func(ctx context.Context, m Member) error {
			mu.Lock()
			challenged[m.ID]++
			mu.Unlock()
			return trustKeys.Prove(ctx, nil, m.URL)
		},
		Retry: 20 * time.Millisecond, MaxRetry: 50 * time.Millisecond, Rejected: rej.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if got := IDsString(ps.Members()); got != "good" {
		t.Fatalf("after the first challenges: %q, want good", got)
	}
	late := &http.Server{Handler: trustKeys.ProofHandler(func() (string, string) { return "late", lateURL })}
	ln, err = net.Listen("tcp", lateURL[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	go late.Serve(ln)
	defer late.Close()
	waitMembers(t, ps, "good,late", 5*time.Second)
	if rej.get("proof_failed") < 2 {
		t.Errorf("refused proofs counted: %v", rej.n)
	}
	if !errors.Is(trustKeys.Prove(ctx, nil, relay.URL), clusterauth.ErrBadSignature) {
		t.Error("the relay proved the key")
	}
}
