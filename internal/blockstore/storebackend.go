package blockstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-media/sluice/internal/cluster"
	"github.com/sluice-media/sluice/internal/store"
)

// StoreBackend is a Backend over the origin's store: every
// fragment of every point is a block, read in place (sendfile from the
// store's files); nothing is written to it.
type StoreBackend struct {
	st *store.Store
}

// NewStoreBackend returns the Backend over st (the local sender of
// `sluice serve`: no second copy of any block).
func NewStoreBackend(st *store.Store) *StoreBackend { return &StoreBackend{st: st} }

// errReadOnly refuses writes to a StoreBackend.
var errReadOnly = fmt.Errorf("the local sender reads the origin's store; blocks are not written to it: %w", ErrReadOnly)

// PutBlock implements Backend.
func (b *StoreBackend) PutBlock(context.Context, cluster.BlockID, []byte) (bool, error) {
	return false, errReadOnly
}

// OpenBlock implements Backend.
func (b *StoreBackend) OpenBlock(_ context.Context, id cluster.BlockID) (Object, error) {
	p, err := b.st.Point(id.Point)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", id, ErrNotFound)
	}
	f, ref, err := p.OpenFragment(id.Track, id.Start)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("block %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &fileObject{f: f, size: ref.Size}, nil
}

// StatBlock implements Backend.
func (b *StoreBackend) StatBlock(_ context.Context, id cluster.BlockID) (int64, error) {
	p, err := b.st.Point(id.Point)
	if err != nil {
		return 0, fmt.Errorf("block %s: %w", id, ErrNotFound)
	}
	ref, err := p.Lookup(id.Track, id.Start)
	if err != nil {
		return 0, fmt.Errorf("block %s: %w", id, ErrNotFound)
	}
	return ref.Size, nil
}

// PutInit implements Backend.
func (b *StoreBackend) PutInit(context.Context, string, string, []byte, string) error {
	return errReadOnly
}

// Init implements Backend.
func (b *StoreBackend) Init(_ context.Context, point, track string) ([]byte, string, error) {
	p, err := b.st.Point(point)
	if err != nil {
		return nil, "", fmt.Errorf("init %s/%s: %w", point, track, ErrNotFound)
	}
	data, err := p.Init(track)
	if err != nil || len(data) == 0 {
		return nil, "", fmt.Errorf("init %s/%s: %w", point, track, ErrNotFound)
	}
	ct := "video/mp4"
	if info, err := p.TrackInfo(track); err == nil && info.Kind == "audio" {
		ct = "audio/mp4"
	}
	return data, ct, nil
}

// Blocks implements Backend: the fragments of every point.
func (b *StoreBackend) Blocks() int {
	n := 0
	for _, name := range b.st.Points() {
		if p, err := b.st.Point(name); err == nil {
			for _, t := range p.View(0).Tracks {
				n += len(t.Frags)
			}
		}
	}
	return n
}

// DeleteBlock implements Backend: refused. The local sender of
// `sluice serve` reads the origin's own store, which prunes itself
// (archive retention); a delete through the sender's internal API must not
// remove a fragment the origin still lists, so it changes nothing and the
// API answers 409.
func (b *StoreBackend) DeleteBlock(_ context.Context, id cluster.BlockID) (bool, error) {
	return false, fmt.Errorf("delete block %s: the local sender reads the origin's store: %w", id, ErrReadOnly)
}
