package cli

import (
	"context"
	"errors"
	"io"
)

// runImport is being written in this session; this placeholder keeps the tree building.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("import: not built yet")
}
