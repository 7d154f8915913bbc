package server

import (
	"context"
	"errors"
	"fmt"
	"os"

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
			Stall: s.cfg.PullStall, OnRestart: s.cfg.OnRestart, Log: s.log, Registry: s.Metrics.Registry,
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

// AddCheck adds a readiness check: /readyz answers 503 with the check's
// error while it returns one (e.g. a scheduler without a live sender).
func (s *Server) AddCheck(check func() error) { s.checks = append(s.checks, check) }

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

// dataWritable checks that a file can be created in the data directory.
func (s *Server) dataWritable() error {
	f, err := os.CreateTemp(s.Store.Dir(), ".ready-*")
	if err != nil {
		return fmt.Errorf("data directory not writable: %w", err)
	}
	name := f.Name()
	_, err = f.Write([]byte("ok"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	os.Remove(name)
	if err != nil {
		return fmt.Errorf("data directory not writable: %w", err)
	}
	return nil
}
