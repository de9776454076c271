package main

import (
	"context"
	"fmt"
	"io"

	"github.com/netsentry/netsentry/configs"
)

func live(ctx context.Context, cfg configs.Config, o options, stdout, stderr io.Writer) int {
	fmt.Fprintf(stderr, "netsentry: live capture on %v is not built yet; use --replay FILE\n", cfg.Interfaces())
	return 2
}
