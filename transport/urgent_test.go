package transport

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSegmentRequestUrgentFlag(t *testing.T) {
	for _, urgent := range []bool{false, true} {
		b, err := encodeSegmentRequest("demo-1", "v/1.m4s", urgent)
		require.NoError(t, err)
		c, p, u, err := readSegmentRequest(bytes.NewReader(b))
		require.NoError(t, err)
		require.Equal(t, []any{"demo-1", "v/1.m4s", urgent}, []any{c, p, u})
	}
	// A normal request is byte for byte what hosts before the flag sent.
	b, _ := encodeSegmentRequest("demo-1", "v/1.m4s", false)
	require.Equal(t, append([]byte{1, 6}, append([]byte("demo-1"), append([]byte{0, 7}, "v/1.m4s"...)...)...), b)
	// Unknown flags are refused.
	u, _ := encodeSegmentRequest("demo-1", "v/1.m4s", true)
	u[len(u)-1] = 2
	_, _, _, err := readSegmentRequest(bytes.NewReader(u))
	require.ErrorIs(t, err, ErrMalformed)
}

func TestUrgentUploadGetsExtraSlot(t *testing.T) {
	u, err := newUploader(UploadPolicy{MaxConcurrent: 2})
	require.NoError(t, err)
	r1, ok := u.acquire(false)
	require.True(t, ok)
	r2, ok := u.acquire(false)
	require.True(t, ok)
	_, ok = u.acquire(false)
	require.False(t, ok, "a third normal upload is busy")
	r3, ok := u.acquire(true)
	require.True(t, ok, "an urgent one gets the extra slot")
	_, ok = u.acquire(true)
	require.False(t, ok, "one extra slot for 2 normal ones")
	r3()
	r1()
	_, ok = u.acquire(false)
	require.True(t, ok)
	r2()
}

// chunkLog records which upload wrote each chunk, in order.
type chunkLog struct {
	mu     sync.Mutex
	writes []string
}

func (l *chunkLog) writer(name string) writer {
	return writeFunc(func(b []byte) (int, error) {
		l.mu.Lock()
		l.writes = append(l.writes, name)
		l.mu.Unlock()
		return len(b), nil
	})
}

type writeFunc func([]byte) (int, error)

func (f writeFunc) Write(b []byte) (int, error) { return f(b) }

// TestUrgentUploadTakesMostOfTheRate: under a 100 KB/s upload cap, a normal
// upload is running when an urgent one starts; while the urgent one runs,
// the normal one gets at most 1/lowShare of the rate (in chunks written),
// and afterwards the whole rate again. Fake time (synctest) makes the token
// buckets exact.
func TestUrgentUploadTakesMostOfTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, err := newUploader(UploadPolicy{MaxRate: 100 << 10})
		require.NoError(t, err)
		var log chunkLog
		data := make([]byte, 400<<10)
		var wg sync.WaitGroup
		wg.Go(func() {
			require.NoError(t, u.write(context.Background(), log.writer("normal"), data, false, func(int) {}))
		})
		time.Sleep(time.Second)
		wg.Go(func() {
			require.NoError(t, u.write(context.Background(), log.writer("urgent"), data[:200<<10], true, func(int) {}))
		})
		wg.Wait()

		first, last := -1, -1
		for i, w := range log.writes {
			if w == "urgent" {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		var normalDuring int
		for _, w := range log.writes[first : last+1] {
			if w == "normal" {
				normalDuring++
			}
		}
		urgentChunks := last - first + 1 - normalDuring
		t.Logf("while the urgent upload ran: %d urgent chunks, %d normal", urgentChunks, normalDuring)
		require.LessOrEqual(t, normalDuring*(lowShare-1), urgentChunks+lowShare, "normal uploads must yield to the urgent one")
		require.Equal(t, "normal", log.writes[len(log.writes)-1], "the normal upload finishes after")
	})
}

var _ io.Writer = writeFunc(nil)
