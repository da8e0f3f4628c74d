package transport

import "math/bits"

// Bitfield is a have-map: bit i (most significant bit of byte i/8 first) is
// set when the peer holds file i of the manifest's media and init files, in
// the order of segment.Manifest.Files (playlists excluded).
type Bitfield []byte

func newBitfield(n int) Bitfield { return make(Bitfield, (n+7)/8) }

// Has reports whether bit i is set; out-of-range bits are unset.
func (b Bitfield) Has(i int) bool {
	if i < 0 || i/8 >= len(b) {
		return false
	}
	return b[i/8]&(0x80>>(i%8)) != 0
}

// set sets bit i and reports whether it was unset before.
func (b Bitfield) set(i int) bool {
	if i < 0 || i/8 >= len(b) {
		return false
	}
	m := byte(0x80 >> (i % 8))
	was := b[i/8]&m != 0
	b[i/8] |= m
	return !was
}

// Count returns the number of set bits.
func (b Bitfield) Count() int {
	n := 0
	for _, x := range b {
		n += bits.OnesCount8(x)
	}
	return n
}

// Clone returns a copy.
func (b Bitfield) Clone() Bitfield { return append(Bitfield(nil), b...) }
