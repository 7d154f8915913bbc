package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-media/sluice/internal/clusterauth"
	"github.com/sluice-media/sluice/internal/membership"
)

// e2eEtcd is a real etcd (Debian's etcd-server) as a cluster runs it in
// production: TLS on its client port with a CA made by the test, client
// certificates required (--client-cert-auth), and authentication enabled
// with two users: "sluice-sender" may read and write the sender prefix
// (senders register there), "sluice-reader" may only read it (origins,
// schedulers, sender-load). Every cluster e2e test uses it.
type e2eEtcd struct {
	URL                    string // https://127.0.0.1:<port>
	ca, cert, key          string // PEM files: CA, client certificate and key
	senderPass, readerPass string // password files
	// senderPassword is the sender user's password: what an attacker
	// with write access to the sender prefix holds.
	senderPassword, readerPassword, rootPassword string
}

// Users of the test etcd.
const (
	etcdSenderUser = "sluice-sender"
	etcdReaderUser = "sluice-reader"
)

// startEtcdServer starts etcd with TLS, client certificates and
// authentication on free loopback ports (see e2eEtcd) and waits until it
// answers. It fails the test when etcd is missing.
func startEtcdServer(t *testing.T) *e2eEtcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is missing from PATH (apt-get install etcd-server; scripts/setup.sh installs it): %v", err)
	}
	dir := t.TempDir()
	e := &e2eEtcd{}
	caCert, caKey := makeCA(t)
	e.ca = writePEM(t, dir, "ca.pem", "CERTIFICATE", caCert.Raw)
	srvCert, srvKey := makeLeaf(t, caCert, caKey, "etcd", x509.ExtKeyUsageServerAuth)
	srvCertFile := writePEM(t, dir, "server.pem", "CERTIFICATE", srvCert)
	srvKeyFile := writePEM(t, dir, "server.key", "EC PRIVATE KEY", srvKey)
	cliCert, cliKey := makeLeaf(t, caCert, caKey, "sluice", x509.ExtKeyUsageClientAuth)
	e.cert = writePEM(t, dir, "client.pem", "CERTIFICATE", cliCert)
	e.key = writePEM(t, dir, "client.key", "EC PRIVATE KEY", cliKey)
	e.rootPassword, e.senderPassword, e.readerPassword = randomHex(12), randomHex(12), randomHex(12)
	e.senderPass = writeFile(t, dir, "sender.pass", e.senderPassword+"\n")
	e.readerPass = writeFile(t, dir, "reader.pass", e.readerPassword+"\n")

	client, peer := freePort(t), freePort(t)
	e.URL = fmt.Sprintf("https://127.0.0.1:%d", client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	p := startProc(t, "etcd", filepath.Join(artifactsDir(t), "etcd.log"), bin,
		"--name", "e2e", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", e.URL, "--advertise-client-urls", e.URL,
		"--cert-file", srvCertFile, "--key-file", srvKeyFile, "--trusted-ca-file", e.ca, "--client-cert-auth",
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "e2e="+pu, "--initial-cluster-state", "new",
		"--log-level", "warn")

	// Users, roles and auth, with the Go client (no etcdctl).
	tc, err := membership.TLSFiles{CA: e.ca, Cert: e.cert, Key: e.key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.URL}, TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Status(ctx, e.URL)
		cancel()
		if err == nil {
			break
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("etcd did not answer over TLS within 30 s: %v\n%s", err, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prefix := membership.DefaultPrefix
	end := clientv3.GetPrefixRangeEnd(prefix)
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", e.rootPassword); return err },
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "senders-rw"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "senders-rw", prefix, end, clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.RoleAdd(ctx, "senders-r"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "senders-r", prefix, end, clientv3.PermissionType(clientv3.PermRead))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, etcdSenderUser, e.senderPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, etcdSenderUser, "senders-rw"); return err },
		func() error { _, err := cli.UserAdd(ctx, etcdReaderUser, e.readerPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, etcdReaderUser, "senders-r"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("etcd auth set-up step %d: %v", i, err)
		}
	}
	return e
}

// args are the flags that connect a sluice role to this etcd as user
// (etcdSenderUser or etcdReaderUser): endpoint, CA, client certificate
// and the user with its password file.
func (e *e2eEtcd) args(user string) []string {
	pass := e.readerPass
	if user == etcdSenderUser {
		pass = e.senderPass
	}
	return []string{"--etcd", e.URL, "--etcd-ca", e.ca, "--etcd-cert", e.cert, "--etcd-key", e.key,
		"--etcd-user", user, "--etcd-password-file", pass}
}

// senderArgs connect a sender (read-write on the prefix).
func (e *e2eEtcd) senderArgs() []string { return e.args(etcdSenderUser) }

// readerArgs connect an origin, a scheduler or sender-load (read-only).
func (e *e2eEtcd) readerArgs() []string { return e.args(etcdReaderUser) }

// config is the connection of an in-process watcher as the reader user; it
// verifies records with the e2e cluster key, as the roles do.
func (e *e2eEtcd) config(t *testing.T) membership.EtcdConfig {
	t.Helper()
	c, err := membership.EtcdConfig{Endpoints: []string{e.URL}}.Credentials(
		membership.TLSFiles{CA: e.ca, Cert: e.cert, Key: e.key}, etcdReaderUser, e.readerPass)
	if err != nil {
		t.Fatal(err)
	}
	c.Keys = clusterauth.NewKeys([]byte(e2eClusterSecret))
	return c
}

// client returns an etcd client logged in as user with password pass.
func (e *e2eEtcd) client(t *testing.T, user, pass string) *clientv3.Client {
	t.Helper()
	tc, err := membership.TLSFiles{CA: e.ca, Cert: e.cert, Key: e.key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.URL}, TLS: tc, Username: user, Password: pass,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func makeCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// makeLeaf returns a certificate (DER) for 127.0.0.1 and localhost signed by
// the CA, and its key (DER).
func makeLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der, kder
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	return writeFile(t, dir, name, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}
