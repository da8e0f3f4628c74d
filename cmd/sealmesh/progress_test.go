package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProgressLinesOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, false)
	require.False(t, p.tty, "a bytes.Buffer is not a terminal")
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }

	p.update(0, 100) // starts the clock, prints nothing
	clock = clock.Add(5 * time.Second)
	p.update(10, 100) // within the interval: nothing
	require.Empty(t, buf.String())

	clock = clock.Add(6 * time.Second)
	p.update(25, 100)
	require.Equal(t, "pack: 25% (25/100 segments)\n", buf.String())

	p.update(26, 100) // the interval starts again
	clock = clock.Add(10 * time.Second)
	p.update(80, 100)
	require.Equal(t, "pack: 25% (25/100 segments)\npack: 80% (80/100 segments)\n", buf.String())

	clock = clock.Add(time.Minute)
	p.update(100, 100) // the summary says it is done
	p.done()
	require.Equal(t, 2, bytes.Count(buf.Bytes(), []byte("\n")), "no line for completion and no bar newline off a terminal")
}

func TestProgressQuiet(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, true)
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	for i := 0; i <= 100; i++ {
		clock = clock.Add(time.Minute)
		p.update(i, 100)
	}
	p.done()
	require.Empty(t, buf.String())
}
