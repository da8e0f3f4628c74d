package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Every wire decoder is fuzzed: it must not panic, must not accept what the
// encoder would not produce, and must read back what the encoder wrote.

func FuzzTicketMsg(f *testing.F) {
	good, _ := encodeTicketMsg(swarmTag("demo-1"), []byte("ticket bytes"))
	f.Add(good)
	f.Add([]byte{1, 0})
	f.Add(append(append([]byte{2}, make([]byte, 32)...), 0, 1, 'x'))
	f.Add(append(append([]byte{2}, make([]byte, 32)...), 0xff, 0xff))
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, ticket, err := readTicketMsg(io.LimitReader(bytes.NewReader(b), maxTicketMsg))
		if err != nil {
			return
		}
		again, err := encodeTicketMsg(tag, ticket)
		if err != nil {
			t.Fatalf("decoded a message the encoder refuses: %v", err)
		}
		if !bytes.HasPrefix(b, again) {
			t.Fatalf("round trip differs: %x vs %x", again, b)
		}
	})
}

func FuzzSegmentRequest(f *testing.F) {
	good, _ := encodeSegmentRequest("demo-1", "video-640x360/1.m4s", false)
	f.Add(good)
	urgent, _ := encodeSegmentRequest("demo-1", "video-640x360/1.m4s", true)
	f.Add(urgent)
	f.Add([]byte{1, 1, '.', 0, 1, 'x'})
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		content, path, urgent, err := readSegmentRequest(io.LimitReader(bytes.NewReader(b), maxRequestMsg))
		if err != nil {
			return
		}
		again, err := encodeSegmentRequest(content, path, urgent)
		if err != nil {
			t.Fatalf("decoded a request the encoder refuses: %v", err)
		}
		if !bytes.HasPrefix(b, again) || len(again) > maxRequestMsg {
			t.Fatalf("round trip differs")
		}
	})
}

func FuzzResponseHeader(f *testing.F) {
	for _, h := range [][respHeaderLen]byte{encodeResponseHeader(statusOK, 1234), encodeResponseHeader(statusBusy, 0), encodeResponseHeader(9, 0)} {
		f.Add(h[:])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		status, size, err := readResponseHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		if status > statusMax || size < 0 || (status != statusOK && size != 0) {
			t.Fatalf("accepted status %d size %d", status, size)
		}
		h := encodeResponseHeader(status, size)
		if !bytes.Equal(h[:], b[:respHeaderLen]) {
			t.Fatalf("round trip differs")
		}
	})
}

func FuzzHello(f *testing.F) {
	bits := newBitfield(11)
	bits.set(0)
	bits.set(10)
	good, _ := encodeHello(hello{content: "demo-1", nbits: 11, bits: bits})
	f.Add(good)
	f.Add([]byte{frameHello, 1, 1, 'a'})
	f.Add(append([]byte{frameHello, 1, 1, 'a'}, make([]byte, 32+4)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readHello(bytes.NewReader(b))
		if err != nil {
			return
		}
		again, err := encodeHello(h)
		if err != nil {
			t.Fatalf("decoded a hello the encoder refuses: %v", err)
		}
		if !bytes.HasPrefix(b, again) || len(again) > maxHaveMsg {
			t.Fatalf("round trip differs")
		}
		for i := h.nbits; i < len(h.bits)*8; i++ {
			if h.bits.Has(i) {
				t.Fatalf("bit %d set past %d", i, h.nbits)
			}
		}
	})
}

func FuzzHaveFrame(f *testing.F) {
	have := encodeHave(3)
	f.Add(have[:], 10)
	f.Add(encodeBitfield(10, newBitfield(10)), 10)
	f.Add([]byte{frameBitfield, 0xff, 0xff, 0xff, 0xff}, 10)
	f.Add([]byte{7}, 1)
	f.Fuzz(func(t *testing.T, b []byte, nbits int) {
		if nbits < 0 || nbits > maxHaveBits {
			return
		}
		fr, err := readHaveFrame(bytes.NewReader(b), nbits)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		var again []byte
		switch fr.kind {
		case frameHave:
			if fr.index < 0 || fr.index >= nbits {
				t.Fatalf("index %d of %d", fr.index, nbits)
			}
			h := encodeHave(fr.index)
			again = h[:]
		case frameBitfield:
			if len(fr.bits) != (nbits+7)/8 {
				t.Fatalf("bitfield of %d bytes for %d bits", len(fr.bits), nbits)
			}
			again = encodeBitfield(nbits, fr.bits)
		default:
			t.Fatalf("kind %d", fr.kind)
		}
		if !bytes.HasPrefix(b, again) {
			t.Fatalf("round trip differs")
		}
	})
}

func TestBitfield(t *testing.T) {
	b := newBitfield(10)
	if len(b) != 2 || b.Has(3) || b.Has(-1) || b.Has(99) {
		t.Fatal("fresh bitfield")
	}
	if !b.set(3) || b.set(3) || !b.Has(3) || b.set(16) {
		t.Fatal("set")
	}
	b.set(9)
	if b.Count() != 2 || b[0] != 0x10 || b[1] != 0x40 {
		t.Fatalf("layout %x", []byte(b))
	}
	c := b.Clone()
	c.set(0)
	if b.Has(0) {
		t.Fatal("clone shares memory")
	}
}
