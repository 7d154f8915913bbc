package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/clusterauth"
)

// ownerSetHosts waits (30 s at most) until the scheduler's owner-set
// listing (GET /internal/v1/owner-sets, docs/cluster.md) covers n live
// senders, and writes it after this machine's /etc/hosts to a hosts file
// in dir. It returns the file and each listed name's addresses in order.
func ownerSetHosts(t *testing.T, schedBase string, n int, dir string) (string, map[string][]string) {
	t.Helper()
	want := fmt.Sprintf("# sluice owner-set host names: %d live senders,", n)
	var body []byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, schedBase+"/internal/v1/owner-sets", nil)
		clusterauth.NewKeys([]byte(e2eClusterSecret)).Sign(req, time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.HasPrefix(string(body), want) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the owner-set listing did not cover %d senders within 30 s: %v\n%s", n, err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	base, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			names[f[1]] = append(names[f[1]], f[0])
		}
	}
	file := filepath.Join(dir, "hosts")
	if err := os.WriteFile(file, append(append(base, '\n'), body...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("owner-set hosts file %s: %d names", file, len(names))
	return file, names
}

// inHostsNamespace is the command prefix that runs a command in a private
// mount namespace whose /etc/hosts is the file hosts: resolvers in it
// (glibc's getaddrinfo, Go's) see every address of a name, in order.
func inHostsNamespace(t *testing.T, hosts string) []string {
	t.Helper()
	return inMountNamespace(t, map[string]string{"/etc/hosts": hosts})
}

// inResolverNamespace is the command prefix that runs a command in a
// private mount namespace whose /etc/resolv.conf names one DNS server
// (port 53, so it must be an address of its own, like 127.0.0.20).
func inResolverNamespace(t *testing.T, server string, dir string) []string {
	t.Helper()
	conf := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver "+server+"\noptions timeout:1 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return inMountNamespace(t, map[string]string{"/etc/resolv.conf": conf})
}

// inMountNamespace is the command prefix that runs a command in a private
// mount namespace with files bind-mounted over others (target: source).
// Not root: a user namespace maps the caller to root for the mounts.
func inMountNamespace(t *testing.T, binds map[string]string) []string {
	t.Helper()
	requireTools(t, "unshare", "mount")
	p := []string{"unshare", "--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		p = append(p, "--map-root-user")
	}
	var script []string
	var args []string
	for target, source := range binds {
		n := len(args)
		script = append(script, fmt.Sprintf(`mount --bind "$%d" "$%d"`, n+1, n+2))
		args = append(args, source, target)
	}
	// sh -c script $0 $1...: $0 is a name, the binds follow, then the
	// command (shifted off before exec).
	script = append(script, fmt.Sprintf(`shift %d && exec "$@"`, len(args)))
	return append(append(p, "sh", "-c", strings.Join(script, " && "), "sluice-ns"), args...)
}

// hostsClient is an HTTP client that resolves the names of hosts itself,
// trying their addresses in order as a browser does, and any other host as
// usual: the test process reads segment URLs with owner-set names.
func hostsClient(hosts map[string][]string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		as, ok := hosts[host]
		if !ok {
			return d.DialContext(ctx, network, addr)
		}
		var errs []error
		for _, a := range as {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(a, port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("%s: %w", host, errors.Join(errs...))
	}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
