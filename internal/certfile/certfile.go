// Package certfile serves a TLS certificate from PEM files that an
// operator (or certbot, cert-manager, …) replaces while the process runs:
// the files are read at start, where any error is fatal, and read again
// when their size or modification time changes, checked at most every
// few seconds on a handshake; a replacement that does not load (a half
// written file, a key that does not match) is logged and the last good
// certificate kept.
package certfile

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CheckEvery is how often, at most, a handshake looks at the files.
const CheckEvery = 5 * time.Second

// Loader holds the certificate of a pair of PEM files. Safe for
// concurrent use.
type Loader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the files the certificate was loaded from
	checked time.Time
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// Load reads the certificate (with its chain) and key files. now may be
// nil (time.Now).
func Load(certFile, keyFile string, log *slog.Logger, now func() time.Time) (*Loader, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tls: both a certificate and a key file are needed")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	l := &Loader{certFile: certFile, keyFile: keyFile, log: log, now: now}
	st, err := l.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	l.cert, l.stamp, l.checked = &cert, st, now()
	return l, nil
}

func (l *Loader) stat() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, f := range []string{l.certFile, l.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return out, fmt.Errorf("tls: %w", err)
		}
		out[i] = fileStamp{fi.Size(), fi.ModTime()}
	}
	return out, nil
}

// GetCertificate is a tls.Config.GetCertificate: the current certificate,
// reloaded first if the files changed.
func (l *Loader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); now.Sub(l.checked) >= CheckEvery {
		l.checked = now
		l.reload()
	}
	return l.cert, nil
}

// reload loads the files again if they changed. l.mu must be held.
func (l *Loader) reload() {
	st, err := l.stat()
	if err != nil {
		l.log.Warn("tls: certificate files unreadable: keeping the loaded certificate", "cert", l.certFile, "err", err)
		return
	}
	if st == l.stamp {
		return
	}
	cert, err := tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		// Tried again on the next check, whether the files change or not
		// (a certificate written before its key).
		l.log.Warn("tls: new certificate files do not load: keeping the loaded certificate", "cert", l.certFile, "err", err)
		return
	}
	l.cert, l.stamp = &cert, st
	l.log.Info("tls: certificate reloaded", "cert", l.certFile)
}

// Config is a server TLS configuration over l: TLS 1.2 at least, HTTP/2
// and HTTP/1.1 offered by ALPN (net/http's ServeTLS serves both).
func (l *Loader) Config() *tls.Config {
	return &tls.Config{
		GetCertificate: l.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}
