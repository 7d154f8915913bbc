package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testkit"
)

// TestHTTPS runs `sluice serve` with --tls-listen beside its plain
// listener and checks, from outside, what an HTTPS player relies on:
//
//   - the TLS address serves the same manifests as the plain one, over
//     HTTP/2 (ALPN h2) and HTTP/1.1 alike, with the configured certificate;
//   - pacing reaches the TCP socket under TLS: a fragment asked for with
//     Sluice-Pacing is paced at that rate on HTTP/1.1 and on HTTP/2 (the
//     debug log reads the socket's rate back), and on HTTP/2, while another
//     fragment of the same connection is still being sent (the client holds
//     its flow-control window), the next one leaves the shared socket's rate
//     alone and says so (com.sluice-src=shared, docs/pacing.md);
//   - ffmpeg decodes the HLS rendition over HTTPS.
func TestHTTPS(t *testing.T) {
	t.Parallel() // no browser: runs beside the other non-browser tests (see docs/testing.md)
	pacingRequireGo(t)
	root := repoRoot(t)
	art := artifactsDir(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	logPath := filepath.Join(art, "sluice.log")
	plain, secure, certPEM, serve := startServeTLS(t, bin, tmp, logPath, "sluice-e2e", "--pacing", "both")
	mpd := waitHTTP(t, plain+"/demo-vod.isml/manifest.mpd", 60*time.Second, serve)
	frag := pacingVideoFragment(t, "demo-vod", mpd)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	client := func(h2 bool) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2, MaxConnsPerHost: 1}
		if h2 {
			// A small receive window: a response whose body the client
			// does not read stays in progress at the server.
			tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 1 << 20}
		} else {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		return &http.Client{Timeout: 30 * time.Second, Transport: tr}
	}
	h2, h1 := client(true), client(false)
	t.Cleanup(h2.CloseIdleConnections)
	t.Cleanup(h1.CloseIdleConnections)

	// The same manifests on both listeners, over HTTP/2 and HTTP/1.1.
	for _, path := range []string{"/demo-vod.isml/manifest.mpd", "/demo-vod.isml/master.m3u8"} {
		_, want := get(t, plain+path)
		for _, c := range []struct {
			cl    *http.Client
			proto string
		}{{h2, "HTTP/2.0"}, {h1, "HTTP/1.1"}} {
			resp, err := c.cl.Get(secure + path)
			if err != nil {
				t.Fatalf("GET %s over %s: %v", path, c.proto, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Proto != c.proto || !bytes.Equal(body, want) {
				t.Errorf("%s over TLS: %s %s, %d bytes (plain: %d)", path, resp.Status, resp.Proto, len(body), len(want))
			}
			if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].Subject.CommonName != "sluice-e2e" {
				t.Errorf("%s: not the configured certificate", path)
			}
		}
	}

	// Paced at the asked rate under TLS, on HTTP/1.1 and HTTP/2.
	paced := map[string]string{"Sluice-Pacing": "rate=3000, burst=4"} // 375 000 B/s
	fetch := func(cl *http.Client, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, secure+frag, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", frag, resp.Status)
		}
		return resp
	}
	pacedLine := func(from int64, src string) pacingLine {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for _, l := range pacingLines(t, logPath, from) {
				if l["path"] == frag && l["source"] == src {
					return l
				}
			}
		}
		t.Fatalf("no %s pacing line for %s in the server log", src, frag)
		return nil
	}
	for _, c := range []struct {
		name string
		cl   *http.Client
	}{{"HTTP/1.1", h1}, {"HTTP/2", h2}} {
		from := pacingLogSize(t, logPath)
		resp := fetch(c.cl, paced)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if dyn := resp.Header.Get("CMSD-Dynamic"); !strings.Contains(dyn, "com.sluice-src=spec") {
			t.Errorf("%s: CMSD-Dynamic %q", c.name, dyn)
		}
		if l := pacedLine(from, "spec"); l.uint("socket_bps") != 375_000 {
			t.Errorf("%s over TLS: the socket's rate read back is %s B/s, want 375000: %v", c.name, l["socket_bps"], l)
		}
	}

	// HTTP/2: a second fragment while the first is in progress on the
	// same connection shares its socket.
	first := fetch(h2, paced)
	from := pacingLogSize(t, logPath)
	second := fetch(h2, paced)
	io.Copy(io.Discard, second.Body)
	second.Body.Close()
	io.Copy(io.Discard, first.Body)
	first.Body.Close()
	if dyn := second.Header.Get("CMSD-Dynamic"); !strings.Contains(dyn, "com.sluice-src=shared") {
		t.Errorf("a second stream on a busy HTTP/2 connection: CMSD-Dynamic %q, want com.sluice-src=shared", dyn)
	}
	pacedLine(from, "shared")

	// A real client over HTTPS (ffmpeg does not check the certificate).
	if n := decodeAll(t, secure+"/demo-vod.isml/master.m3u8"); n == 0 {
		t.Error("ffmpeg decoded no video frame over HTTPS")
	}
}

// TestClusterHTTPS: a sender that also serves HTTPS (--tls-listen) and a
// scheduler told that players reach senders there (--sender-player-url
// https://{host}:<port>): the sessions' master playlists name the senders'
// HTTPS URLs, and a player fetches the pathway playlist (which the sender
// answers from the scheduler), the header and every fragment over HTTP/2
// with the sender's certificate, while the scheduler and the origin keep
// the senders' plain member URLs.
func TestClusterHTTPS(t *testing.T) {
	t.Parallel() // no browser
	ffmpeg := requireFFmpeg(t)
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := buildSluice(t, root, tmp)
	certFile, keyFile, certPEM := writeSelfSigned(t, tmp, "sluice-sender")
	tlsPort := freePort(t)
	sender := startClSender(t, bin, "sender", shmDir(t, "s0"), "--ram", "16M",
		"--tls-listen", "127.0.0.1:"+strconv.Itoa(tlsPort), "--tls-cert", certFile, "--tls-key", keyFile)
	mp4 := shortMP4(t, ffmpeg, tmp)
	data := shmDir(t, "origin")
	runAll(t, 1, [][]string{{bin, "import", "--data", data, mp4, "vod"}})
	runAll(t, 1, [][]string{{bin, "sender-load", "--senders", sender.base, "--replicas", "1", "--cluster-secret", e2eClusterSecret, data, "vod"}})
	originBase, _ := startOrigin(t, bin, data)
	sched := startClSched(t, bin, "scheduler", originBase, "--senders", sender.base,
		"--sender-player-url", "https://{host}:"+strconv.Itoa(tlsPort))

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	h2 := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	t.Cleanup(h2.CloseIdleConnections)
	fetch := func(u string) []byte {
		t.Helper()
		resp, err := h2.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || (strings.HasPrefix(u, "https:") && resp.Proto != "HTTP/2.0") {
			t.Fatalf("GET %s: %s %s %.200s", u, resp.Status, resp.Proto, b)
		}
		return b
	}
	var master []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(sched.base + "/s/vod/master.m3u8")
		if err == nil {
			master, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session: %v %s", err, master)
		}
	}
	prefix := "https://127.0.0.1:" + strconv.Itoa(tlsPort) + "/b/"
	var playlists []string
	for _, m := range regexp.MustCompile(`https?://[^"\s]+/media\.m3u8`).FindAllString(string(master), -1) {
		if !strings.HasPrefix(m, prefix) {
			t.Errorf("a pathway playlist not at the sender's HTTPS address: %s", m)
		}
		playlists = append(playlists, m)
	}
	if len(playlists) == 0 {
		t.Fatalf("no pathway playlist in the master:\n%s", master)
	}
	segments := 0
	for _, pl := range playlists {
		base := pl[:strings.LastIndexByte(pl, '/')+1]
		body := fetch(pl)
		for _, line := range strings.Split(string(body), "\n") {
			uri := ""
			switch {
			case strings.HasPrefix(line, "#EXT-X-MAP:"):
				uri = regexp.MustCompile(`URI="([^"]+)"`).FindStringSubmatch(line)[1]
			case line != "" && !strings.HasPrefix(line, "#"):
				uri = line
			}
			if uri == "" {
				continue
			}
			if strings.Contains(uri, "://") {
				t.Fatalf("%s lists an absolute URI %s", pl, uri)
			}
			if b := fetch(base + uri); len(b) < 8 {
				t.Fatalf("%s: %d bytes", base+uri, len(b))
			}
			segments++
		}
	}
	t.Logf("%d playlists, %d headers and fragments fetched over HTTP/2 from the sender", len(playlists), segments)
}

// writeSelfSigned writes a self-signed server certificate for 127.0.0.1
// (common name cn) and its key into dir and returns the files and the
// certificate (for a client's roots).
func writeSelfSigned(t *testing.T, dir, cn string) (certFile, keyFile string, certPEM []byte) {
	t.Helper()
	certPEM, keyPEM := testkit.SelfSignedPEM(t, cn)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, certPEM
}

// startServeTLS starts `sluice serve` over a data directory in dir with a
// plain and an HTTPS address (a self-signed certificate for cn), debug
// logging to logPath and the extra flags; it returns both base URLs, the
// certificate and the process.
func startServeTLS(t *testing.T, bin, dir, logPath, cn string, extra ...string) (plain, secure string, certPEM []byte, serve *proc) {
	t.Helper()
	certFile, keyFile, certPEM := writeSelfSigned(t, dir, cn)
	plainAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	tlsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	args := append([]string{bin, "serve", "--listen", plainAddr, "--data", filepath.Join(dir, "data"),
		"--tls-listen", tlsAddr, "--tls-cert", certFile, "--tls-key", keyFile, "--log-level", "debug"}, extra...)
	serve = startProc(t, "sluice serve", logPath, args...)
	return "http://" + plainAddr, "https://" + tlsAddr, certPEM, serve
}
