package membership

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []Member
		err  string
	}{
		{"http://127.0.0.1:9002,http://127.0.0.1:9001/", []Member{{"127.0.0.1:9001", "http://127.0.0.1:9001"}, {"127.0.0.1:9002", "http://127.0.0.1:9002"}}, ""},
		{"b=http://h:1, a=https://h:2", []Member{{"a", "https://h:2"}, {"b", "http://h:1"}}, ""},
		{"http://h:1,http://h:1", nil, "twice"},
		{"h:1", nil, "http(s)"},
		{"=http://h:1", nil, "empty id"},
		{"", nil, ""},
	} {
		got, err := ParseList(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Errorf("%q: %v %v", c.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q: %v, want %v", c.in, got, c.want)
			}
		}
	}
}

func TestStatic(t *testing.T) {
	if _, err := Static(); err == nil {
		t.Error("empty static set accepted")
	}
	s, err := Static(Member{"b", "http://b:1"}, Member{"a", "http://a:1"})
	if err != nil {
		t.Fatal(err)
	}
	ms := s.Members()
	if ids := IDs(ms); strings.Join(ids, ",") != "a,b" {
		t.Errorf("ids %v", ids)
	}
	ms[0].ID = "changed"
	if s.Members()[0].ID != "a" {
		t.Error("Members returned the set's own slice")
	}
	if m, ok := Lookup(s.Members(), "b"); !ok || m.URL != "http://b:1" {
		t.Errorf("lookup %v %v", m, ok)
	}
	select {
	case <-s.Changed():
		t.Error("a static set changed")
	default:
	}
}

// startEtcd starts Debian's etcd on free loopback ports (skipped outside
// CI when it is missing) and returns its client URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("etcd is missing (apt-get install etcd-server): %v", err)
		}
		t.Skipf("etcd is missing: %v", err)
	}
	ports := make([]int, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	cu, pu := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin, "--name", "t", "--data-dir", t.TempDir(),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "t="+pu, "--initial-cluster-state", "new", "--log-level", "error")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cu
}

// TestEtcdFollowsAfterShortContext: the set given by Etcd keeps following
// the registrations after the context of the call (a start-up timeout)
// has ended, until Close. It needs Debian's etcd (etcd-server); CI has it.
func TestEtcdFollowsAfterShortContext(t *testing.T) {
	cu := startEtcd(t)
	cfg := EtcdConfig{Endpoints: []string{cu}, Prefix: "/test/senders/"}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	set, err := Etcd(ctx, cfg)
	cancel() // what the origin and the scheduler do once the first listing is in
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if n := len(set.Members()); n != 0 {
		t.Fatalf("%d members at the start", n)
	}
	ch := set.Changed()
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	reg, err := Register(rctx, cfg, Member{ID: "s1", URL: "http://127.0.0.1:9001"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the set did not see a sender register after the start-up context ended")
	}
	if ms := set.Members(); len(ms) != 1 || ms[0].ID != "s1" {
		t.Fatalf("members %v", ms)
	}
}
