package main

import (
	"context"
	"io"
)

// runBench points at the benchmark's own command. The swarm benchmark
// draws plots with gonum/plot and its fonts (about 4 MB), which the binary
// that plays and seeds on a set-top box has no use for, so it lives in
// cmd/sealmesh-bench.
func runBench(_ context.Context, _ []string, _, _ io.Writer) error {
	return usageErr("the swarm benchmark is its own command (this binary links no plotting code): run 'go run ./cmd/sealmesh-bench swarm --help' in the repository, or build it with 'go build ./cmd/sealmesh-bench'")
}
