package server

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sluice-media/sluice/internal/puller"
)

// setupPeers wires what the roles need of their peers — an origin with
// ingests pulls from them — and registers the readiness checks of each role:
//
//   - ingest: the data directory is writable (fragments can be stored);
//   - origin without ingests: the same (it takes pushes);
//   - origin with ingests: the data directory is writable, an ingest
//     answered a StreamManifest lately and every live stream is being
//     pulled.
//
// /healthz only says the process is alive.
func (s *Server) setupPeers(roles Roles) {
	if s.Store != nil && (roles.Ingest || roles.Origin) {
		s.checks = append(s.checks, s.dataWritable)
	}
	if roles.Origin && len(s.cfg.Ingests) > 0 && s.ingest != nil {
		s.puller = puller.New(s.Store, s.ingest, puller.Options{
			Ingests: append([]string(nil), s.cfg.Ingests...), Points: s.cfg.Points,
			Stall: s.cfg.PullStall, MaxPulls: s.cfg.MaxPulls, OnRestart: s.cfg.OnRestart, Log: s.log, Registry: s.Metrics.Registry,
		})
		s.checks = append(s.checks, s.puller.Ready)
	}
}

// startPeers starts pulling from the ingests and stops the push proxy when
// ctx ends.
func (s *Server) startPeers(ctx context.Context) {
	if s.puller != nil {
		go s.puller.Run(ctx)
	}
	if s.ingest != nil {
		go func() {
			<-ctx.Done()
			s.ingest.Close()
		}()
	}
}

// addCheck adds a readiness check: /readyz answers 503 with the check's
// error while it returns one (e.g. a scheduler without a live sender).
func (s *Server) addCheck(check func() error) { s.checks = append(s.checks, check) }

// readiness is nil when the process can serve its roles, else why not.
func (s *Server) readiness() error {
	var errs []error
	if !s.ready() {
		errs = append(errs, errors.New("not ready"))
	}
	for _, c := range s.checks {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// probeSize is what the readiness probe writes in the data directory: a
// block, so that a filesystem with no block left fails it.
const probeSize = 4 << 10

// dataWritable checks that the data directory can take a write: it has at
// least cfg.MinFree bytes free (what an unprivileged writer may use: the
// blocks reserved for root do not count), and a file of probeSize can be
// created, written and removed. A full disk makes the process not ready
// until both succeed again. The probe is not synced: /readyz stays cheap.
func (s *Server) dataWritable() error {
	dir := s.Store.Dir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if free := int64(fs.Bavail) * int64(fs.Bsize); free < int64(s.cfg.MinFree) {
		return fmt.Errorf("data directory has %d bytes free, below min_free (%d)", free, int64(s.cfg.MinFree))
	}
	// The name starts like the store's temporary files: one left by a
	// crash is removed at the next start.
	f, err := os.CreateTemp(dir, ".tmp-ready-*")
	if err != nil {
		return fmt.Errorf("data directory not writable: %w", err)
	}
	name := f.Name()
	defer os.Remove(name)
	_, err = f.Write(make([]byte, probeSize))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("data directory not writable: %w", err)
	}
	return nil
}
