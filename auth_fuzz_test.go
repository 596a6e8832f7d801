package wsgate

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerifyHS checks that verifyHS answers as golang-jwt's parser does,
// with and without an audience and issuer to check: the same outcome
// (valid, expired or invalid) and, for a valid token, the same claims.
// The fuzzer picks the header among hsHeaders, the claims bytes, whether
// the token is signed with the secret, and one byte to overwrite.
func FuzzVerifyHS(f *testing.F) {
	verifiers := make([]*verifier, 2)
	for i, aud := range []string{"", "api"} {
		v, err := newVerifier("client.token", gwSecret, "", "", aud, aud)
		if err != nil {
			f.Fatal(err)
		}
		verifiers[i] = v
	}
	headers := make([]string, 0, len(hsHeaders))
	for h := range hsHeaders {
		headers = append(headers, h)
	}
	slices.Sort(headers)
	const (
		wrongKey = 1 << iota
		overwrite
	)
	for i := range len(headers) {
		f.Add(uint8(i), []byte(`{"sub":"u","exp":4102444800,"info":{"a":1},"channels":["x"]}`), uint8(0), uint16(0), byte(0))
	}
	f.Add(uint8(0), []byte(`{"sub":"u","exp":1}`), uint8(0), uint16(0), byte(0))                       // expired
	f.Add(uint8(0), []byte(`{"sub":"u","exp":1}`), uint8(wrongKey), uint16(0), byte(0))                // expired, forged
	f.Add(uint8(1), []byte(`{"sub":"u","nbf":4102444800,"exp":1}`), uint8(0), uint16(0), byte(0))      // not yet valid and expired
	f.Add(uint8(2), []byte(`{"sub":"u","aud":["api","x"],"iss":"api"}`), uint8(0), uint16(0), byte(0)) // audience and issuer
	f.Add(uint8(2), []byte(`{"sub":"u","aud":"x","exp":"soon"}`), uint8(0), uint16(0), byte(0))        // bad types
	f.Add(uint8(3), []byte(`null`), uint8(0), uint16(0), byte(0))                                      // no claims
	f.Add(uint8(4), []byte(`{"sub":"u"}`), uint8(overwrite), uint16(70), byte('\n'))                   // a line break
	f.Add(uint8(5), []byte(`{"sub":"u"}`), uint8(overwrite), uint16(71), byte('.'))                    // a fourth segment
	f.Add(uint8(6), []byte(`{"sub":"u","exp":4102444800.5}`), uint8(overwrite), uint16(3), byte('A'))  // header changed
	f.Add(uint8(7), []byte(`{"sub":"u","b64info":"eyJhIjoxfQ=="}`), uint8(overwrite), uint16(9), byte('='))
	f.Fuzz(func(t *testing.T, hdr uint8, payload []byte, mode uint8, at uint16, b byte) {
		h := headers[int(hdr)%len(headers)]
		signed := h + "." + base64.RawURLEncoding.EncodeToString(payload)
		key := []byte(gwSecret)
		if mode&wrongKey != 0 {
			key = []byte("another secret")
		}
		mac := hmac.New(hsHashes[hsHeaders[h]].New, key)
		mac.Write([]byte(signed))
		tok := []byte(signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
		if mode&overwrite != 0 {
			tok[int(at)%len(tok)] = b
		}
		for _, v := range verifiers {
			got := new(claims)
			fast, err := v.verifyHS(string(tok), got)
			if !fast {
				continue
			}
			want := new(claims)
			_, werr := v.parser.ParseWithClaims(string(tok), want, v.key)
			if outcome(err) != outcome(werr) {
				t.Fatalf("token %q: verifyHS %v, parser %v", tok, err, werr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("token %q: verifyHS claims %+v, parser %+v", tok, got, want)
			}
		}
	})
}

// outcome classes an error of golang-jwt's parser (validating or not)
// as verify classes the token, in Centrifugo's order: 0 valid; 1
// expired, when all that failed is a time check (exp, nbf); 2 invalid.
func outcome(err error) int {
	switch {
	case err == nil:
		return 0
	case (errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenNotValidYet)) &&
		!errors.Is(err, jwt.ErrTokenInvalidAudience) && !errors.Is(err, jwt.ErrTokenInvalidIssuer) &&
		!errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return 1
	}
	return 2
}
