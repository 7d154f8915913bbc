package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-media/sluice/internal/testkit"
)

func writePair(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	c, k := testkit.SelfSignedPEM(t, cn)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cf, c, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

// TestReload: the certificate is reloaded when its files change (looked
// at no more often than CheckEvery); a replacement that does not load
// keeps the last good one, and is loaded once it does.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "first")
	clk := testkit.NewClock(time.Now())
	l, err := Load(cf, kf, nil, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	get := func() string {
		c, err := l.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return commonName(t, c)
	}
	if got := get(); got != "first" {
		t.Fatalf("loaded %q", got)
	}
	writePair(t, dir, "second")
	// Make the change visible even on a coarse file-time clock.
	later := time.Now().Add(time.Minute)
	os.Chtimes(cf, later, later)
	if got := get(); got != "first" {
		t.Fatalf("looked at the files before CheckEvery: %q", got)
	}
	clk.Add(CheckEvery)
	if got := get(); got != "second" {
		t.Fatalf("after the change: %q", got)
	}
	// A broken certificate file keeps the loaded one...
	if err := os.WriteFile(cf, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Add(CheckEvery)
	if got := get(); got != "second" {
		t.Fatalf("after a broken file: %q", got)
	}
	// ... until a good pair is there.
	writePair(t, dir, "third")
	later = later.Add(time.Minute)
	os.Chtimes(cf, later, later)
	clk.Add(CheckEvery)
	if got := get(); got != "third" {
		t.Fatalf("after the repair: %q", got)
	}
}

// TestLoadErrors: a missing file, a key of another certificate or no file
// name at all is an error at start.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "a")
	other := t.TempDir()
	_, okf := writePair(t, other, "b")
	for name, files := range map[string][2]string{
		"missing cert": {filepath.Join(dir, "nope.pem"), kf},
		"missing key":  {cf, filepath.Join(dir, "nope.pem")},
		"wrong key":    {cf, okf},
		"no cert name": {"", kf},
	} {
		if _, err := Load(files[0], files[1], nil, nil); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	l, err := Load(cf, kf, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := l.Config(); c.MinVersion != tls.VersionTLS12 || c.NextProtos[0] != "h2" {
		t.Errorf("config %+v", c)
	}
}
