package wsgate

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	_ "crypto/sha256" // HS256
	_ "crypto/sha512" // HS384, HS512
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are the JWT claims wsgate reads: Centrifugo's connection token
// (sub, exp, expire_at, info, b64info, channels) and subscription token
// (sub, exp, expire_at, channel, client, info).
type claims struct {
	jwt.RegisteredClaims
	// ExpireAt, when present, is when the connection or subscription
	// expires in place of exp (which still bounds the token's own
	// validity); 0 or less: never.
	ExpireAt *int64          `json:"expire_at,omitempty"`
	Info     json.RawMessage `json:"info,omitempty"`
	B64Info  string          `json:"b64info,omitempty"`
	Channels []string        `json:"channels,omitempty"`
	Channel  string          `json:"channel,omitempty"`
	Client   string          `json:"client,omitempty"`
}

// info returns the connection info: b64info decoded, else info (nil for
// none or null). A b64info that is not base64 is an error, which a
// connect or refresh answers as Centrifugo does: internal error 100.
func (c *claims) info() ([]byte, error) {
	if c.B64Info != "" {
		return base64.StdEncoding.DecodeString(c.B64Info)
	}
	if len(c.Info) == 0 || string(c.Info) == "null" {
		return nil, nil
	}
	return c.Info, nil
}

// maxTTL caps how far ahead a token's grant expires, as Centrifugo caps
// it (a year): further is likely a mistake, and sessions keep expiries
// in uint32 seconds, which end in 2106.
const maxTTL = 365 * 24 * 3600

// expiry returns when what the token grants (a connection, a
// subscription) expires, Unix seconds (0: never): expire_at if present,
// else exp, at most maxTTL from now. lapsed reports an expire_at that
// has passed (an exp that has is refused by verify): as Centrifugo, the
// grant is refused then, with 110 "expired".
func (c *claims) expiry() (exp int64, lapsed bool) {
	switch {
	case c.ExpireAt != nil:
		exp = max(*c.ExpireAt, 0)
	case c.ExpiresAt != nil:
		exp = c.ExpiresAt.Unix()
	}
	if exp == 0 {
		return 0, false
	}
	now := time.Now().Unix()
	return min(exp, now+maxTTL), exp <= now
}

// verifier checks token signatures: HS256/384/512 with the HMAC secret,
// RS256/384/512 with the RSA key, ES256/384/512 with the ECDSA key.
type verifier struct {
	hmac     []byte
	rsa      *rsa.PublicKey
	ecdsa    *ecdsa.PublicKey
	parser   *jwt.Parser // signature and claim types only: see verify
	audience string
	issuer   string
	macs     [3]sync.Pool // *hsState for HS256, HS384, HS512
}

// Token verification outcomes, mapped by the protocol code to an error
// reply (expired) or a disconnect (invalid).
var (
	errTokenExpired = errors.New("wsgate: token expired")
	errTokenInvalid = errors.New("wsgate: invalid token")
)

// newVerifier verifies tokens with the keys of the configuration section
// named section ("client.token"), which its errors name.
func newVerifier(section, secret, rsaPEM, ecdsaPEM, audience, issuer string) (*verifier, error) {
	v := &verifier{}
	var methods []string
	if secret != "" {
		v.hmac = []byte(secret)
		methods = append(methods, "HS256", "HS384", "HS512")
	}
	if rsaPEM != "" {
		k, err := jwt.ParseRSAPublicKeyFromPEM([]byte(rsaPEM))
		if err != nil {
			return nil, fmt.Errorf("wsgate: config: %s.rsa_public_key: %w", section, err)
		}
		v.rsa = k
		methods = append(methods, "RS256", "RS384", "RS512")
	}
	if ecdsaPEM != "" {
		k, err := jwt.ParseECPublicKeyFromPEM([]byte(ecdsaPEM))
		if err != nil {
			return nil, fmt.Errorf("wsgate: config: %s.ecdsa_public_key: %w", section, err)
		}
		v.ecdsa = k
		methods = append(methods, "ES256", "ES384", "ES512")
	}
	// No jwt.WithJSONNumber: it only matters for claims of type any, which
	// claims has none of, and it decodes through a json.Decoder, which
	// cost 760 B and 0.9 µs more per verification (BenchmarkVerifyHS256:
	// 3,200 → 2,440 B, 6.1–6.9 → 4.7–5.3 µs).
	// With no key configured, methods is empty, and jwt.WithValidMethods
	// of an empty list would check no algorithm at all: key refuses every
	// token in that case, so nothing verifies against a key that is not
	// there (an HS256 token signed with an empty secret included).
	v.parser = jwt.NewParser(jwt.WithValidMethods(methods), jwt.WithoutClaimsValidation())
	v.audience, v.issuer = audience, issuer
	for i, h := range hsHashes {
		v.macs[i].New = func() any { return &hsState{mac: hmac.New(h.New, v.hmac)} }
	}
	return v, nil
}

// key returns the key that verifies t's algorithm, or errTokenInvalid
// when no key of that kind is configured.
func (v *verifier) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(v.hmac) > 0 {
			return v.hmac, nil
		}
	case *jwt.SigningMethodRSA:
		if v.rsa != nil {
			return v.rsa, nil
		}
	case *jwt.SigningMethodECDSA:
		if v.ecdsa != nil {
			return v.ecdsa, nil
		}
	}
	return nil, errTokenInvalid
}

// verify parses and checks token: errTokenExpired when all that is
// wrong with it is its time (exp passed, or nbf not reached),
// errTokenInvalid for anything else. The claims are checked as Centrifugo
// checks them, audience and issuer before the times: a token for another
// audience is invalid even when it has expired, and one that is only
// early or late is an expired one, which clients replace.
func (v *verifier) verify(token string) (*claims, error) {
	c := new(claims)
	fast, err := v.verifyHS(token, c)
	if !fast {
		_, err = v.parser.ParseWithClaims(token, c, v.key)
	}
	if err != nil ||
		v.audience != "" && !slices.Contains(c.Audience, v.audience) ||
		v.issuer != "" && c.Issuer != v.issuer {
		return nil, errTokenInvalid
	}
	now := time.Now()
	if c.ExpiresAt != nil && !now.Before(c.ExpiresAt.Time) || c.NotBefore != nil && now.Before(c.NotBefore.Time) {
		return nil, errTokenExpired
	}
	return c, nil
}

// HMAC tokens, the usual connection tokens, are verified without the
// parser: it decodes the header into a map and makes a new HMAC for
// each token, about 1.6 KB of the 2.4 KB a verification allocated
// (BenchmarkVerifyHS256), garbage that every connect made. verifyHS
// takes the tokens whose header is one of those the signing libraries
// write and gives the parser's answer for them, in the parser's order
// (segments, claims, signature); FuzzVerifyHS checks it against the
// parser.

// hsHashes are the hashes of HS256, HS384 and HS512.
var hsHashes = [3]crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

// hsHeaders maps the encoded JOSE headers that golang-jwt, jsonwebtoken,
// PyJWT and cristalhq/jwt write for HS256/384/512 tokens to the index of
// their hash in hsHashes.
var hsHeaders = func() map[string]int {
	m := make(map[string]int)
	for i, alg := range []string{"HS256", "HS384", "HS512"} {
		for _, h := range []string{
			`{"alg":"` + alg + `","typ":"JWT"}`,
			`{"typ":"JWT","alg":"` + alg + `"}`,
			`{"alg":"` + alg + `"}`,
		} {
			m[base64.RawURLEncoding.EncodeToString([]byte(h))] = i
		}
	}
	return m
}()

// hsState is a pooled HMAC with the buffers of one verification.
type hsState struct {
	mac hash.Hash
	in  []byte // a segment, to decode
	out []byte // the claims, decoded
	sig [64]byte
	sum [64]byte
}

// hsBufMax is the most a pooled hsState keeps of its buffers.
const hsBufMax = 4 << 10

// decode decodes the base64url segment seg into dst[:0] as the parser
// does (padding refused, line breaks skipped).
func (st *hsState) decode(dst []byte, seg string) ([]byte, error) {
	st.in = append(st.in[:0], seg...)
	n := base64.RawURLEncoding.DecodedLen(len(seg))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	n, err := base64.RawURLEncoding.Decode(dst[:n], st.in)
	return dst[:n], err
}

// verifyHS verifies token into c if its header is one of hsHeaders and
// an HMAC secret is configured; fast is false, and c untouched, for any
// other token.
func (v *verifier) verifyHS(token string, c *claims) (fast bool, err error) {
	header, rest, _ := strings.Cut(token, ".")
	i, ok := hsHeaders[header]
	if !ok || len(v.hmac) == 0 {
		return false, nil
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return true, jwt.ErrTokenMalformed
	}
	st := v.macs[i].Get().(*hsState)
	defer func() {
		if cap(st.in) > hsBufMax || cap(st.out) > hsBufMax {
			st.in, st.out = nil, nil
		}
		v.macs[i].Put(st)
	}()
	if st.out, err = st.decode(st.out, payload); err != nil {
		return true, jwt.ErrTokenMalformed
	}
	if err := json.Unmarshal(st.out, c); err != nil {
		return true, jwt.ErrTokenMalformed
	}
	s, err := st.decode(st.sig[:0], sig)
	if err != nil {
		return true, jwt.ErrTokenMalformed
	}
	st.mac.Reset()
	st.in = append(st.in[:0], token[:len(header)+1+len(payload)]...)
	st.mac.Write(st.in)
	if !hmac.Equal(s, st.mac.Sum(st.sum[:0])) {
		return true, jwt.ErrTokenSignatureInvalid
	}
	return true, nil
}
