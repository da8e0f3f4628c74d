package transport

import "errors"

// Errors that transport calls wrap; branch with errors.Is.
var (
	// ErrPeerBanned: the peer sent bytes that fail the manifest (or broke the
	// segment protocol) and is banned for the session, or was banned before
	// the call. Fetch errors for bad bytes wrap both ErrPeerBanned and
	// segment.ErrIntegrity.
	ErrPeerBanned = errors.New("transport: peer banned")
	// ErrNotAdmitted: the peer has not presented a valid ticket for the
	// content (in our view), or it answered that we are not admitted (in its).
	ErrNotAdmitted = errors.New("transport: peer not admitted to the swarm")
	// ErrBusy: the peer refused the request under its upload policy (too many
	// concurrent uploads, or consume-only). Go elsewhere; the peer is fine.
	// It has a Busy method, which tells sched to try the peer again soon
	// instead of counting a failure.
	ErrBusy error = busyError{}
	// ErrNotFound: the peer does not hold the file (or holds bytes that no
	// longer match the manifest and would not serve them).
	ErrNotFound = errors.New("transport: peer does not have the file")
	// ErrManifestMismatch: the peer announced a different manifest for the
	// content (another packaging of it); its files would not verify against
	// ours, so it is not asked.
	ErrManifestMismatch = errors.New("transport: peer has another manifest for the content")
	// ErrClosed: the Host or Swarm is closed.
	ErrClosed = errors.New("transport: closed")
	// ErrMalformed: a wire message broke the format (bad version, length out
	// of bounds, trailing bits). Decoders wrap it.
	ErrMalformed = errors.New("transport: malformed message")
)

type busyError struct{}

func (busyError) Error() string { return "transport: peer busy" }
func (busyError) Busy() bool    { return true }
