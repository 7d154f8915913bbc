package main

import (
	"context"
	"io"
)

func runTable(ctx context.Context, args []string, stdout, stderr io.Writer) error { return nil }
