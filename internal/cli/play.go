package cli

import (
	"context"
	"errors"
	"io"
)

// runPlay is being written in this session; this placeholder keeps the tree building.
func runPlay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("play: not built yet")
}
