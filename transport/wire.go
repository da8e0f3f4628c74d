package transport

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/sealmesh/sealmesh/segment"
)

// Wire formats of the three sealmesh protocols. Every integer is big-endian;
// every length is checked against its bound before anything is allocated, so
// a peer cannot make us allocate more than the bound by lying in a header.
// The formats are described for humans in doc.go; the fuzz targets in
// fuzz_test.go hold the decoders to them.

const wireVersion = 1

// Bounds on wire fields.
const (
	maxContentLen = 128  // segment.ValidContentID allows at most 128 characters
	maxTicketLen  = 4096 // the license server's encoded tickets are at most 4096 bytes
	maxPathLen    = 512  // manifest paths are at most 512 bytes (segment.validRelPath)

	// maxTicketMsg bounds a ticket message: version, swarm tag, ticket
	// length, ticket.
	maxTicketMsg = 1 + swarmTagLen + 2 + maxTicketLen
	// maxRequestMsg bounds a segment request: version, content length,
	// content, path length, path (644 bytes; the reader allows 1 KiB).
	maxRequestMsg = 1024
	// respHeaderLen is a segment response header: status, size.
	respHeaderLen = 1 + 8
	// maxHaveBits bounds a bitfield: a manifest lists at most this many files.
	maxHaveBits = segment.MaxManifestFiles
	// maxHaveMsg bounds one have-protocol frame (the hello, the largest).
	maxHaveMsg = 1 + 1 + 1 + maxContentLen + 32 + 4 + (maxHaveBits+7)/8
)

// Ticket protocol reply statuses.
const (
	ticketAdmitted       byte = 0 // verified; admission recorded
	ticketRejected       byte = 1 // the verifier refused the ticket
	ticketUnknownContent byte = 2 // this host has not joined the content
)

// Segment response statuses. Any other value is a protocol violation.
const (
	statusOK          byte = 0 // size bytes of ciphertext follow
	statusNotAdmitted byte = 1 // the requester holds no valid admission for the content
	statusNotFound    byte = 2 // not held, not in the manifest, or held bytes fail the manifest
	statusBusy        byte = 3 // upload policy: too many uploads, or consume-only
	statusBadRequest  byte = 4 // unknown content
	statusMax              = statusBadRequest
)

// Have protocol frame types.
const (
	frameHello    byte = 1 // first frame only: content, manifest digest, bitfield
	frameHave     byte = 2 // one more file held: index
	frameBitfield byte = 3 // the whole bitfield again (after the sender's queue overflowed)
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

func checkContent(c string) error {
	if len(c) == 0 || len(c) > maxContentLen {
		return malformed("content ID length %d outside 1..%d", len(c), maxContentLen)
	}
	if err := segment.ValidContentID(c); err != nil {
		return malformed("%v", err)
	}
	return nil
}

// ticketMsgVersion is the version byte of ticket messages: 2 since they
// name the swarm by its tag instead of its content ID.
const ticketMsgVersion = 2

// swarmTagLen is the length of a swarm tag (SHA-256).
const swarmTagLen = sha256.Size

// swarmTag names a content's swarm in ticket messages, which a dialer sends
// before it knows whom it reached (an mDNS neighbour may be anybody): a
// stranger learns the content only if it guesses the content ID, as with
// the ticket's own content tag.
func swarmTag(content string) [swarmTagLen]byte {
	return sha256.Sum256([]byte("sealmesh swarm tag v1\x00" + content))
}

// encodeTicketMsg: version u8 (2) | swarm tag (32) | ticket length u16 | ticket.
func encodeTicketMsg(tag [swarmTagLen]byte, ticket []byte) ([]byte, error) {
	if len(ticket) == 0 || len(ticket) > maxTicketLen {
		return nil, malformed("ticket length %d outside 1..%d", len(ticket), maxTicketLen)
	}
	b := make([]byte, 0, 1+swarmTagLen+2+len(ticket))
	b = append(b, ticketMsgVersion)
	b = append(b, tag[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ticket)))
	return append(b, ticket...), nil
}

func readTicketMsg(r io.Reader) (tag [swarmTagLen]byte, ticket []byte, err error) {
	var h [1 + swarmTagLen + 2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return tag, nil, fmt.Errorf("read header: %w", err)
	}
	if h[0] != ticketMsgVersion {
		return tag, nil, malformed("ticket message version %d, want %d", h[0], ticketMsgVersion)
	}
	copy(tag[:], h[1:1+swarmTagLen])
	n := int(binary.BigEndian.Uint16(h[1+swarmTagLen:]))
	if n == 0 || n > maxTicketLen {
		return tag, nil, malformed("ticket length %d outside 1..%d", n, maxTicketLen)
	}
	ticket = make([]byte, n)
	if _, err := io.ReadFull(r, ticket); err != nil {
		return tag, nil, fmt.Errorf("read ticket: %w", err)
	}
	return tag, ticket, nil
}

func readVersionContent(r io.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", fmt.Errorf("read header: %w", err)
	}
	if h[0] != wireVersion {
		return "", malformed("version %d, want %d", h[0], wireVersion)
	}
	if h[1] == 0 || int(h[1]) > maxContentLen {
		return "", malformed("content ID length %d outside 1..%d", h[1], maxContentLen)
	}
	var buf [maxContentLen]byte
	c := buf[:h[1]]
	if _, err := io.ReadFull(r, c); err != nil {
		return "", fmt.Errorf("read content ID: %w", err)
	}
	content := string(c)
	if err := checkContent(content); err != nil {
		return "", err
	}
	return content, nil
}

// encodeSegmentRequest: version u8 | content length u8 | content | path
// length u16 | path [| flags u8]. The flags byte is sent only for an urgent
// request (flagUrgent); hosts that predate it stop reading after the path
// and serve it as a normal one.
func encodeSegmentRequest(content, path string, urgent bool) ([]byte, error) {
	if err := checkContent(content); err != nil {
		return nil, err
	}
	if len(path) == 0 || len(path) > maxPathLen {
		return nil, malformed("path length %d outside 1..%d", len(path), maxPathLen)
	}
	b := make([]byte, 0, 5+len(content)+len(path))
	b = append(b, wireVersion, byte(len(content)))
	b = append(b, content...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(path)))
	b = append(b, path...)
	if urgent {
		b = append(b, flagUrgent)
	}
	return b, nil
}

// flagUrgent marks a request the requester needs within its urgent window:
// the server gives it an extra upload slot if all are taken and most of
// its upload rate while it runs.
const flagUrgent byte = 1

// readSegmentRequest reads a request; the requester has closed its side
// after it, so a missing flags byte reads as EOF.
func readSegmentRequest(r io.Reader) (content, path string, urgent bool, err error) {
	content, err = readVersionContent(r)
	if err != nil {
		return "", "", false, err
	}
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return "", "", false, fmt.Errorf("read path length: %w", err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n == 0 || n > maxPathLen {
		return "", "", false, malformed("path length %d outside 1..%d", n, maxPathLen)
	}
	var buf [maxPathLen]byte
	p := buf[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		return "", "", false, fmt.Errorf("read path: %w", err)
	}
	var fl [1]byte
	switch _, err := io.ReadFull(r, fl[:]); {
	case err == io.EOF:
	case err != nil:
		return "", "", false, fmt.Errorf("read flags: %w", err)
	case fl[0] > flagUrgent:
		return "", "", false, malformed("request flags %#x", fl[0])
	default:
		urgent = fl[0] == flagUrgent
	}
	return content, string(p), urgent, nil
}

// encodeResponseHeader: status u8 | size u64. size is 0 unless status is OK.
func encodeResponseHeader(status byte, size int64) [respHeaderLen]byte {
	var h [respHeaderLen]byte
	h[0] = status
	binary.BigEndian.PutUint64(h[1:], uint64(size))
	return h
}

func readResponseHeader(r io.Reader) (status byte, size int64, err error) {
	var h [respHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, fmt.Errorf("read response header: %w", err)
	}
	status = h[0]
	u := binary.BigEndian.Uint64(h[1:])
	if status > statusMax {
		return 0, 0, malformed("unknown status %d", status)
	}
	if u > segment.MaxFileSize {
		return 0, 0, malformed("size %d over the %d limit", u, segment.MaxFileSize)
	}
	if status != statusOK && u != 0 {
		return 0, 0, malformed("status %d with size %d", status, u)
	}
	return status, int64(u), nil
}

// hello is the first have-protocol frame.
type hello struct {
	content string
	digest  [32]byte // manifestDigest of the sender's manifest
	nbits   int
	bits    Bitfield
}

// encodeHello: type u8 (1) | version u8 | content length u8 | content |
// manifest digest [32] | nbits u32 | bitfield (ceil(nbits/8) bytes).
func encodeHello(h hello) ([]byte, error) {
	if err := checkContent(h.content); err != nil {
		return nil, err
	}
	if h.nbits < 0 || h.nbits > maxHaveBits || len(h.bits) != (h.nbits+7)/8 {
		return nil, malformed("bitfield of %d bytes for %d bits", len(h.bits), h.nbits)
	}
	b := make([]byte, 0, 3+len(h.content)+32+4+len(h.bits))
	b = append(b, frameHello, wireVersion, byte(len(h.content)))
	b = append(b, h.content...)
	b = append(b, h.digest[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.nbits))
	return append(b, h.bits...), nil
}

func readHello(r io.Reader) (hello, error) {
	var t [1]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return hello{}, fmt.Errorf("read frame type: %w", err)
	}
	if t[0] != frameHello {
		return hello{}, malformed("first frame has type %d, want hello", t[0])
	}
	content, err := readVersionContent(r)
	if err != nil {
		return hello{}, err
	}
	h := hello{content: content}
	if _, err := io.ReadFull(r, h.digest[:]); err != nil {
		return hello{}, fmt.Errorf("read manifest digest: %w", err)
	}
	h.nbits, h.bits, err = readBits(r)
	if err != nil {
		return hello{}, err
	}
	return h, nil
}

// readBits reads nbits u32 | bitfield, refusing set bits past nbits so a
// bitfield has one encoding.
func readBits(r io.Reader) (int, Bitfield, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return 0, nil, fmt.Errorf("read bit count: %w", err)
	}
	n := binary.BigEndian.Uint32(l[:])
	if n > maxHaveBits {
		return 0, nil, malformed("%d bits over the %d limit", n, maxHaveBits)
	}
	bits := newBitfield(int(n))
	if _, err := io.ReadFull(r, bits); err != nil {
		return 0, nil, fmt.Errorf("read bitfield: %w", err)
	}
	if n%8 != 0 && bits[len(bits)-1]&(0xff>>(n%8)) != 0 {
		return 0, nil, malformed("bits set past bit %d", n)
	}
	return int(n), bits, nil
}

// encodeHave: type u8 (2) | index u32.
func encodeHave(index int) [5]byte {
	var b [5]byte
	b[0] = frameHave
	binary.BigEndian.PutUint32(b[1:], uint32(index))
	return b
}

// encodeBitfield: type u8 (3) | nbits u32 | bitfield.
func encodeBitfield(nbits int, bits Bitfield) []byte {
	b := make([]byte, 0, 5+len(bits))
	b = append(b, frameBitfield)
	b = binary.BigEndian.AppendUint32(b, uint32(nbits))
	return append(b, bits...)
}

// haveFrame is a frame after the hello: an index (frameHave) or a whole
// bitfield (frameBitfield).
type haveFrame struct {
	kind  byte
	index int
	bits  Bitfield
}

// readHaveFrame reads one frame after the hello, for a manifest of nbits
// files: an index must be below nbits and a bitfield must have exactly nbits.
func readHaveFrame(r io.Reader, nbits int) (haveFrame, error) {
	var t [1]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return haveFrame{}, fmt.Errorf("read frame type: %w", err)
	}
	switch t[0] {
	case frameHave:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return haveFrame{}, fmt.Errorf("read index: %w", err)
		}
		i := binary.BigEndian.Uint32(b[:])
		if uint64(i) >= uint64(nbits) {
			return haveFrame{}, malformed("index %d of %d files", i, nbits)
		}
		return haveFrame{kind: frameHave, index: int(i)}, nil
	case frameBitfield:
		n, bits, err := readBits(r)
		if err != nil {
			return haveFrame{}, err
		}
		if n != nbits {
			return haveFrame{}, malformed("bitfield of %d bits for %d files", n, nbits)
		}
		return haveFrame{kind: frameBitfield, bits: bits}, nil
	default:
		return haveFrame{}, malformed("frame type %d", t[0])
	}
}
