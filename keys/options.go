package keys

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"
)

// Option configures Init, Open and NewReader. Each option says which of
// them it affects; the others ignore it.
type Option func(*options) error

type options struct {
	master          tink.AEAD
	lockTimeout     time.Duration
	time            uint32
	memoryKiB       uint32
	threads         uint8
	now             func() time.Time
	refreshInterval time.Duration
	logger          *slog.Logger
}

// DefaultLockTimeout is how long Open, Init and a Reader wait for the file
// lock held by another process before failing with ErrLocked.
const DefaultLockTimeout = time.Second

// DefaultRefreshInterval is how often a Reader checks its store file for
// changes when looked-up keys are found (a miss always checks).
const DefaultRefreshInterval = 2 * time.Second

func buildOptions(opts []Option) (*options, error) {
	o := &options{
		lockTimeout:     DefaultLockTimeout,
		time:            DefaultArgon2Time,
		memoryKiB:       DefaultArgon2MemoryKiB,
		threads:         DefaultArgon2Threads,
		now:             time.Now,
		refreshInterval: DefaultRefreshInterval,
		logger:          slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, fmt.Errorf("keys: option: %w", err)
		}
	}
	return o, nil
}

// WithMasterAEAD seals the store's KEK keyset with a (typically KMS-backed)
// AEAD instead of a passphrase-derived key, e.g. the result of a Tink
// registry.KMSClient's GetAEAD(keyURI). The passphrase argument of Init and
// Open is then ignored and may be nil. A store created with WithMasterAEAD
// must be opened with an AEAD for the same KMS key, and a passphrase store
// cannot be opened with WithMasterAEAD.
func WithMasterAEAD(a tink.AEAD) Option {
	return func(o *options) error {
		if a == nil {
			return errors.New("WithMasterAEAD: nil AEAD")
		}
		o.master = a
		return nil
	}
}

// WithLockTimeout sets how long to wait for another process's lock on the
// store file before failing with ErrLocked: in Init, Open, NewReader and each
// of a Reader's re-reads. It must be positive; the default is
// DefaultLockTimeout.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("WithLockTimeout: %v is not positive", d)
		}
		o.lockTimeout = d
		return nil
	}
}

// WithArgon2Params sets the argon2id cost used by Init to derive the master
// key from the passphrase (time passes, memory in KiB, lanes). It has no
// effect on Open, which uses the parameters stored in the file. The defaults
// (DefaultArgon2Time, DefaultArgon2MemoryKiB, DefaultArgon2Threads) are right
// for production; tests pass small values to run fast.
func WithArgon2Params(time, memoryKiB uint32, threads uint8) Option {
	return func(o *options) error {
		if err := validateArgon2(time, memoryKiB, threads); err != nil {
			return fmt.Errorf("WithArgon2Params: %w", err)
		}
		o.time, o.memoryKiB, o.threads = time, memoryKiB, threads
		return nil
	}
}

// WithClock sets the clock used for ContentInfo.Created and for a Reader's
// refresh schedule (WithRefreshInterval). The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithRefreshInterval sets how often a Reader looks at its store file for
// changes while lookups succeed; a lookup miss always looks. Looking costs
// one stat call; the file is re-read only if it changed. Zero selects
// DefaultRefreshInterval; negative values are refused. It has no effect on
// Init and Open.
func WithRefreshInterval(d time.Duration) Option {
	return func(o *options) error {
		switch {
		case d < 0:
			return fmt.Errorf("WithRefreshInterval: %v is negative", d)
		case d == 0:
			d = DefaultRefreshInterval
		}
		o.refreshInterval = d
		return nil
	}
}

// WithLogger sets the logger a Reader reports failed background refreshes
// to (at Warn) and re-reads to (at Debug). Log lines carry the store path and
// the error, never key material. The default discards everything; nil is
// refused. It has no effect on Init and Open.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.logger = l
		return nil
	}
}
