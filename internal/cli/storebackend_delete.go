package cli

import (
	"context"
	"fmt"

	"github.com/sluice-media/sluice/internal/blockstore"
	"github.com/sluice-media/sluice/internal/cluster"
)

// DeleteBlock implements blockstore.Backend: refused. The local sender of
// `sluice serve` reads the origin's own store, which prunes itself
// (archive retention); a delete through the sender's internal API must not
// remove a fragment the origin still lists, so it changes nothing and the
// API answers 409.
func (b *storeBackend) DeleteBlock(_ context.Context, id cluster.BlockID) (bool, error) {
	return false, fmt.Errorf("delete block %s: the local sender reads the origin's store: %w", id, blockstore.ErrReadOnly)
}
