package membership

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/sluice-media/sluice/internal/clusterauth"
)

// OpenConfig names the sender set a role sends to.
type OpenConfig struct {
	// Static is a fixed list of members (used when Etcd is nil).
	Static []Member
	// Etcd, when set, takes the members from etcd (its Keys, Rejected and
	// Log are set from this configuration).
	Etcd *EtcdConfig
	// Keys verify the members: etcd records must be signed with them, and
	// every member must answer a challenge (Proven) before it is in the
	// set. Required.
	Keys clusterauth.Keys
	// Client sends the challenges (a client with a 3 s timeout when nil).
	Client *http.Client
	// Rejected counts ignored records and members (a metric).
	Rejected func(reason string)
	Log      *slog.Logger
	// StartTimeout bounds the wait for the first etcd listing and the first
	// challenges (10 s when 0).
	StartTimeout time.Duration
}

// Open returns the set of members that proved they hold the cluster key,
// over the static list or the etcd set; call the returned function to
// release it.
func Open(ctx context.Context, c OpenConfig) (Set, func(), error) {
	if !c.Keys.Valid() {
		return nil, nil, errors.New("membership: the cluster key is required to trust members")
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
	sctx, cancel := context.WithTimeout(ctx, c.StartTimeout)
	defer cancel()
	var inner Set
	closeInner := func() {}
	if c.Etcd != nil {
		ec := *c.Etcd
		ec.Keys, ec.Rejected = c.Keys, c.Rejected
		if ec.Log == nil {
			ec.Log = c.Log
		}
		es, err := Etcd(sctx, ec)
		if err != nil {
			return nil, nil, err
		}
		inner, closeInner = es, func() { es.Close() }
	} else {
		st, err := Static(c.Static...)
		if err != nil {
			return nil, nil, err
		}
		inner = st
	}
	client := c.Client
	if client == nil {
		client = &http.Client{Timeout: 3 * time.Second}
	}
	ps, err := Proven(sctx, inner, ProveConfig{
		Prove:    func(ctx context.Context, m Member) error { return c.Keys.Prove(ctx, client, m.URL) },
		Rejected: c.Rejected,
		Log:      c.Log,
	})
	if err != nil {
		closeInner()
		return nil, nil, err
	}
	return ps, func() { ps.Close(); closeInner() }, nil
}
