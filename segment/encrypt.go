package segment

import (
	"bytes"
	"fmt"

	"github.com/Eyevinn/mp4ff/mp4"
)

// encryptSegment builds one CMAF media segment (styp + moof + mdat) of the
// given samples and encrypts it. It returns the segment, the IV to continue
// with under the same key (cenc), and the number of bytes actually
// encrypted, which the caller uses to refuse signing clear media.
//
// When clear is set (an explicitly requested clear lead) every sample is
// described in senc as one all-clear subsample: players that expect
// protected media then decrypt nothing and play it.
//
// payload holds the samples' data concatenated in order; it becomes the
// mdat as is (no copy) and is encrypted in place.
func encryptSegment(seq uint32, samples []mp4.FullSample, payload, key, iv []byte, ipd *mp4.InitProtectData, clear bool) ([]byte, []byte, int64, error) {
	if len(samples) == 0 {
		return nil, nil, 0, fmt.Errorf("no samples")
	}
	seg := mp4.NewMediaSegment()
	frag, err := mp4.CreateFragment(seq, 1)
	if err != nil {
		return nil, nil, 0, err
	}
	seg.AddFragment(frag)
	for _, s := range samples {
		if err := frag.AddSampleToTrack(s.Sample, 1, s.DecodeTime); err != nil {
			return nil, nil, 0, err
		}
	}
	frag.Mdat.SetData(payload)
	var protected int64
	use := *ipd
	orig := ipd.ProtFunc
	use.ProtFunc = func(sample []byte, scheme string) ([]mp4.SubSamplePattern, error) {
		if clear {
			return allClear(len(sample)), nil
		}
		ssp, err := orig(sample, scheme)
		if err != nil {
			return nil, err
		}
		if len(ssp) == 0 { // whole-sample encryption (audio): CTR covers every byte, CBC whole blocks
			if scheme == string(SchemeCENC) {
				protected += int64(len(sample))
			} else {
				protected += int64(len(sample) &^ 15)
			}
		}
		for _, p := range ssp {
			protected += int64(p.BytesOfProtectedData)
		}
		return ssp, nil
	}
	next, err := mp4.EncryptFragment(frag, key, iv, &use)
	if err != nil {
		return nil, nil, 0, err
	}
	var buf bytes.Buffer
	buf.Grow(int(seg.Size()))
	if err := seg.Encode(&buf); err != nil {
		return nil, nil, 0, err
	}
	return buf.Bytes(), next, protected, nil
}

// allClear describes a sample of n bytes as clear subsamples (each at most
// 65535 clear bytes, the field's limit).
func allClear(n int) []mp4.SubSamplePattern {
	var out []mp4.SubSamplePattern
	for n > 0 {
		c := min(n, 0xffff)
		out = append(out, mp4.SubSamplePattern{BytesOfClearData: uint16(c)})
		n -= c
	}
	if out == nil {
		out = []mp4.SubSamplePattern{{}}
	}
	return out
}
