package license

import (
	"crypto/ed25519"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/sealmesh/sealmesh/keys"
)

// Fuzz targets for every decoder of outside input. They check that no input
// panics and that every refusal is an API error of status 4xx.

func check4xx(t *testing.T, err error) {
	if err == nil {
		return
	}
	ae := asAPIError(err)
	if ae.status < 400 || ae.status >= 500 {
		t.Fatalf("decoder error %v has status %d", err, ae.status)
	}
}

func FuzzLicenseRequest(f *testing.F) {
	f.Add([]byte(`{"content":"movie-1","hpke_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","nonce":"x"}`))
	f.Add([]byte(`{"content":"m","kids":["0123456789abcdef0123456789abcdef"],"suite":"mlkem768x25519","hpke_public_key":"AA","nonce":"n","device_id":"d"}`))
	f.Add([]byte(`{"content":"m","position":12.5,"hpke_public_key":"AA","nonce":"n"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseLicenseRequest(b)
		check4xx(t, err)
	})
}

func FuzzRenewRequest(f *testing.F) {
	f.Add([]byte(`{"session_id":"s","hpke_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","nonce":"x"}`))
	f.Add([]byte(`{"session_id":"s","content":"c","kids":[],"position":1e300,"hpke_public_key":"","nonce":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseRenewRequest(b)
		check4xx(t, err)
	})
}

func FuzzClearKeyRequest(f *testing.F) {
	f.Add([]byte(`{"kids":["ASNFZ4mrze8BI0VniavN7w"],"type":"temporary"}`), "kid=0123456789abcdef0123456789abcdef")
	f.Add([]byte(``), "kid=01234567-89ab-cdef-0123-456789abcdef&kid=x")
	f.Fuzz(func(t *testing.T, b []byte, q string) {
		vals, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		kids, err := parseClearKeyRequest(b, vals)
		check4xx(t, err)
		if err == nil && (len(kids) == 0 || len(kids) > maxClearKeyKIDs) {
			t.Fatalf("%d KIDs accepted", len(kids))
		}
	})
}

func FuzzTicketRequest(f *testing.F) {
	f.Add([]byte(`{"peer_id":"12D3KooWA1b2C3d4E5f6G7h8J9k1L2m3N4p5Q6r7S8t9U1v2W3x4","content":"movie-1"}`))
	f.Add([]byte(`{"peer_id":"bafzaajaiaejcaxyz234567abcdefghijklmnop","content":"c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseTicketRequest(b)
		check4xx(t, err)
	})
}

func FuzzAnnounceRequest(f *testing.F) {
	f.Add([]byte(`{"ticket":"a.b.c","addrs":["/ip4/1.2.3.4/tcp/1"],"want":3}`))
	f.Add([]byte(`{"ticket":"a.b.c","peer_id":"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N","addrs":[],"want":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseAnnounceRequest(b)
		check4xx(t, err)
		if err == nil && (a.want < 1 || a.want > maxWant) {
			t.Fatalf("want %d accepted", a.want)
		}
	})
}

var fuzzKey = ed25519.NewKeyFromSeed(make([]byte, 32))

func FuzzTicketBytes(f *testing.F) {
	p := &TicketPayload{TicketID: "t", PeerID: "p", ContentTag: contentTag("t", "c"), Budget: "b", NotBefore: time.Unix(0, 0), Expiry: time.Unix(600, 0)}
	tr, err := signTicket(fuzzKey, "k", p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(tr.Encoded))
	f.Add([]byte("a.b.c"))
	v, err := NewTicketVerifier([]ed25519.PublicKey{fuzzKey.Public().(ed25519.PublicKey)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, err := v.Verify(b, "p", "c", time.Unix(300, 0))
		if err == nil && (tk.PeerID != "p" || tk.ContentTag != contentTag(tk.TicketID, "c")) {
			t.Fatal("accepted a ticket for another peer or content")
		}
	})
}

func FuzzLicenseResponse(f *testing.F) {
	pub := fuzzKey.Public().(ed25519.PublicKey)
	kem, _ := SuiteX25519.kem()
	priv, _ := kem.GenerateKey()
	var ks []keys.ContentKey
	for p := range 2 {
		k, err := keys.NewContentKey(p)
		if err != nil {
			f.Fatal(err)
		}
		ks = append(ks, k)
	}
	resp, err := sealLicense(fuzzKey, "k", &LicensePayload{LicenseID: "l", Content: "c", Nonce: "n"}, priv.PublicKey(), ks)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := json.Marshal(resp)
	f.Add(b)
	f.Add([]byte(`{"license":"e30","signature":"","key_id":"k"}`))
	pinned := map[string]ed25519.PublicKey{"k": pub}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := verifyLicenseResponse(b, pinned)
		if err != nil {
			return
		}
		_, _ = unwrapKeys(priv, p)
	})
}

// FuzzUnwrapKeys feeds unsigned payloads straight to the unwrapping, the
// part of the client past the signature check.
func FuzzUnwrapKeys(f *testing.F) {
	kem, _ := SuiteX25519.kem()
	priv, _ := kem.GenerateKey()
	k, err := keys.NewContentKey(0)
	if err != nil {
		f.Fatal(err)
	}
	encRaw, sender, err := newSender(priv.PublicKey(), "l")
	if err != nil {
		f.Fatal(err)
	}
	wks, err := wrapKeys(sender, []keys.ContentKey{k})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(&LicensePayload{LicenseID: "l", Enc: b64.EncodeToString(encRaw), Keys: wks})
	f.Add(good)
	f.Add([]byte(`{"license_id":"l","enc":"AA","keys":[{"kid":"00","period":-1,"ct":"!"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p LicensePayload
		if json.Unmarshal(b, &p) != nil {
			return
		}
		ks, err := unwrapKeys(priv, &p)
		if err == nil && len(ks) != len(p.Keys) {
			t.Fatalf("%d keys unwrapped of %d", len(ks), len(p.Keys))
		}
	})
}
