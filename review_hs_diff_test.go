package wsgate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// hsRef verifies tokens as verify did before verifyHS: every token
// through a parser of its own, built from the same options, with the
// key of the token's method kind.
type hsRef struct {
	v      *verifier // the verifier under test, same configuration
	parser *jwt.Parser
	secret []byte
	rsa    *rsa.PublicKey
	ecdsa  *ecdsa.PublicKey
}

func newHSRef(t testing.TB, secret string, rk *rsa.PublicKey, ek *ecdsa.PublicKey, aud, iss string) *hsRef {
	t.Helper()
	var rsaPEM, ecPEM string
	var methods []string
	if secret != "" {
		methods = append(methods, "HS256", "HS384", "HS512")
	}
	if rk != nil {
		rsaPEM = pemOf(t, rk)
		methods = append(methods, "RS256", "RS384", "RS512")
	}
	if ek != nil {
		ecPEM = pemOf(t, ek)
		methods = append(methods, "ES256", "ES384", "ES512")
	}
	v, err := newVerifier("client.token", secret, rsaPEM, ecPEM, aud, iss)
	if err != nil {
		t.Fatal(err)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods)}
	if aud != "" {
		opts = append(opts, jwt.WithAudience(aud))
	}
	if iss != "" {
		opts = append(opts, jwt.WithIssuer(iss))
	}
	return &hsRef{v: v, parser: jwt.NewParser(opts...), secret: []byte(secret), rsa: rk, ecdsa: ek}
}

func pemOf(t testing.TB, pub any) string {
	t.Helper()
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("pemOf needs a *testing.T")
	}
	return pemPublic(tt, pub)
}

// verify is verify done by golang-jwt's validating parser: (claims,
// outcome) with outcome 0 valid, 1 expired, 2 invalid (see outcome).
func (r *hsRef) verify(token string) (*claims, int) {
	var c claims
	_, err := r.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		switch t.Method.(type) {
		case *jwt.SigningMethodHMAC:
			if len(r.secret) > 0 {
				return r.secret, nil
			}
		case *jwt.SigningMethodRSA:
			if r.rsa != nil {
				return r.rsa, nil
			}
		case *jwt.SigningMethodECDSA:
			if r.ecdsa != nil {
				return r.ecdsa, nil
			}
		}
		return nil, errors.New("no key")
	})
	if o := outcome(err); o != 0 {
		return nil, o
	}
	return &c, 0
}

// check compares verify (the code under test, fast path or not) with the
// reference on token; it reports whether verifyHS took the token.
func (r *hsRef) check(t testing.TB, token string) bool {
	t.Helper()
	want, wo := r.verify(token)
	got, err := r.v.verify(token)
	var gotO int
	switch {
	case err == nil:
	case errors.Is(err, errTokenExpired):
		gotO = 1
	default:
		gotO = 2
	}
	if gotO != wo {
		t.Fatalf("token %q: verify outcome %d (%v), parser %d", token, gotO, err, wo)
	}
	if wo == 0 && !reflect.DeepEqual(got, want) {
		t.Fatalf("token %q: verify claims %+v, parser %+v", token, got, want)
	}
	fast, _ := r.v.verifyHS(token, new(claims))
	return fast
}

// hsSign signs header.payload (both already encoded) with alg's hash and
// key, returning the encoded signature.
func hsSign(alg int, key []byte, signing string) string {
	m := hmac.New(hsHashes[alg].New, key)
	m.Write([]byte(signing))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// hsQuirkTokens are tokens built to hit the corners of the parser:
// base64 (line breaks, padding, non-canonical last bits, standard
// alphabet), JSON (duplicate and case-folded keys, escapes, null, non
// objects, huge numbers, wrong types), signatures (another hash, another
// key, truncated, extended, empty), segments, and headers next to the
// fast ones.
func hsQuirkTokens(secret string) []string {
	key := []byte(secret)
	hdr := func(alg int) string {
		return b64(`{"alg":"` + []string{"HS256", "HS384", "HS512"}[alg] + `","typ":"JWT"}`)
	}
	signed := func(alg int, h, p string) string { return h + "." + p + "." + hsSign(alg, key, h+"."+p) }
	payloads := []string{
		`{"sub":"u","exp":4102444800,"info":{"a":1},"channels":["x"]}`,
		`{"sub":"u","exp":1}`,
		`{"sub":"u","nbf":4102444800}`,
		`{"sub":"u","nbf":4102444800,"exp":1}`,
		`{"sub":"u","aud":"api","iss":"api"}`,
		`{"sub":"u","aud":["x","api"],"iss":"api","exp":4102444800}`,
		`{"sub":"u","aud":["x"],"iss":"api"}`,
		`{"sub":"u","aud":"api","iss":"other"}`,
		`{"sub":"u","aud":"api","iss":"api","exp":1}`,
		`{"sub":"u","aud":[1],"iss":"api"}`,
		`{"sub":"a","sub":"b","exp":1,"exp":4102444800}`,
		`{"sub":"a","exp":4102444800,"exp":1}`,
		`{"SUB":"u","Exp":1}`,
		`{"Sub":"u","EXP":4102444800,"CHANNELS":["a"],"Info":{"x":1},"B64INFO":"eA=="}`,
		`{"ſub":"kelvin","K":1}`,
		`{"\u0073ub":"esc","\u0065xp":1}`,
		`{"sub":"\ud800","info":"\u2028"}`,
		`null`, ` null `, `[]`, `1`, `"x"`, `true`, `{}`, ``, ` `, `{`, `{"sub":"u"} {}`, `{"sub":"u"}x`,
		`{"exp":1e400}`, `{"exp":-1e400}`, `{"exp":9223372036854775808}`, `{"exp":1e19}`, `{"exp":-9223372036854775809}`,
		`{"exp":4102444800.999999999999}`, `{"exp":0.5}`, `{"exp":0}`, `{"exp":-1}`, `{"exp":null}`, `{"exp":"4102444800"}`,
		`{"exp":true}`, `{"nbf":"x"}`, `{"iat":"x"}`, `{"iat":4102444800}`, `{"aud":null}`, `{"aud":{}}`, `{"aud":[null]}`,
		`{"info":null}`, `{"info":123456789012345678901234567890}`, `{"channels":null}`, `{"channels":[1]}`, `{"channels":"a"}`,
		`{"b64info":1}`, `{"jti":1}`, `{"sub":1}`, `{"sub":null}`, `{"iss":null}`,
		"{\"sub\":\"u\"\x00}", "{\"sub\":\"\xff\"}", `{"sub":"u","exp":4102444800,}`, "\ufeff{}",
	}
	var toks []string
	for _, p := range payloads {
		for alg := range 3 {
			h := hdr(alg)
			ep := b64(p)
			toks = append(toks, signed(alg, h, ep))
			toks = append(toks, h+"."+ep+"."+hsSign(alg, []byte("other"), h+"."+ep)) // wrong key
			toks = append(toks, h+"."+ep+"."+hsSign((alg+1)%3, key, h+"."+ep))       // wrong hash
			toks = append(toks, h+"."+ep+"."+hsSign(alg, []byte{}, h+"."+ep))        // empty key
		}
	}
	h := hdr(0)
	p := b64(`{"sub":"u","exp":4102444800,"info":{"a":"bcd"}}`)
	good := signed(0, h, p)
	sig := good[len(h)+len(p)+2:]
	rawSig, _ := base64.RawURLEncoding.DecodeString(sig)
	toks = append(toks,
		good,
		h+"."+p+"."+sig[:len(sig)-1],
		h+"."+p+"."+sig[:len(sig)-2],
		h+"."+p+"."+sig+"A",
		h+"."+p+"."+sig+"AA",
		h+"."+p+"."+sig+"=",
		h+"."+p+"."+base64.URLEncoding.EncodeToString(rawSig),
		h+"."+p+"."+base64.StdEncoding.EncodeToString(rawSig),
		h+"."+p+"."+base64.RawStdEncoding.EncodeToString(rawSig),
		h+"."+p+"."+base64.RawURLEncoding.EncodeToString(append(rawSig, 0)),
		h+"."+p+"."+base64.RawURLEncoding.EncodeToString(rawSig[:31]),
		h+"."+p+"."+base64.RawURLEncoding.EncodeToString(append(append([]byte{}, rawSig...), rawSig...)),
		h+"."+p+".",
		h+"."+p,
		h+".",
		h,
		h+"..",
		"."+p+"."+sig,
		h+"."+p+"."+sig+".",
		h+"."+p+"."+sig+"."+sig,
		h+"\n."+p+"."+sig,
		h+"."+p+"\n."+sig,
		h+"."+p+"."+sig+"\n",
		h+"."+p+"."+sig[:10]+"\r\n"+sig[10:],
		h+"."+p+"."+sig[:10]+" "+sig[10:],
		h+"."+p+"."+strings.Repeat("A", 200),
		h+"."+p+"."+strings.Repeat("A", 5000),
	)
	// Line breaks inside a signed payload are skipped by the decoder but
	// are part of the signing input.
	for _, ins := range []string{"\n", "\r", "\r\n", "\n\n\n"} {
		p2 := p[:7] + ins + p[7:]
		toks = append(toks, signed(0, h, p2), h+"."+p2+"."+sig)
	}
	// Non-canonical last bits: the last character of a segment whose
	// length is 2 or 3 mod 4 carries bits the decoder ignores.
	for _, seg := range []string{p, sig} {
		if len(seg)%4 == 0 || len(seg)%4 == 1 {
			continue
		}
		last := seg[len(seg)-1]
		for _, c := range base64URLAlpha {
			if byte(c) == last {
				continue
			}
			alt := seg[:len(seg)-1] + string(c)
			if seg == p {
				toks = append(toks, signed(0, h, alt), h+"."+alt+"."+sig)
			} else {
				toks = append(toks, h+"."+p+"."+alt)
			}
		}
	}
	// Headers next to the fast ones, correctly signed: they take the
	// parser, and must still answer as it does.
	for _, hj := range []string{
		`{"alg":"HS256","typ":"JWT","kid":"1"}`,
		`{"typ":"JWT","alg":"HS256"}`,
		`{"alg":"HS256"}`,
		`{"alg": "HS256","typ":"JWT"}`,
		`{"alg":"HS256","typ":"JWT"} `,
		`{"alg":"hs256","typ":"JWT"}`,
		`{"ALG":"HS256"}`,
		`{"alg":"HS256","alg":"none"}`,
		`{"alg":"none","alg":"HS256"}`,
		`{"alg":"none","typ":"JWT"}`,
		`{"alg":"RS256","typ":"JWT"}`,
		`{"alg":"ES256","typ":"JWT"}`,
		`{"alg":"PS256","typ":"JWT"}`,
		`{"alg":"EdDSA","typ":"JWT"}`,
		`{"alg":"\u0048S256"}`,
		`{"alg":["HS256"]}`,
		`{}`, `null`, `[]`,
	} {
		hh := b64(hj)
		toks = append(toks, signed(0, hh, p), hh+"."+p+".", hh+"."+p+"."+sig)
		hp := base64.URLEncoding.EncodeToString([]byte(hj))
		toks = append(toks, signed(0, hp, p))
	}
	// A fast header whose last character has its unused bits set: the
	// same JSON, another header string.
	for _, hs := range hsHeaderList() {
		if len(hs)%4 < 2 {
			continue
		}
		for _, c := range base64URLAlpha {
			alt := hs[:len(hs)-1] + string(c)
			if alt != hs {
				toks = append(toks, signed(0, alt, p), signed(1, alt, p), signed(2, alt, p))
			}
		}
	}
	return toks
}

func hsHeaderList() []string {
	var hs []string
	for h := range hsHeaders {
		hs = append(hs, h)
	}
	return hs
}

// hsConfigs are the verifier configurations the reviews compare: HMAC
// alone, with audience and issuer, with RSA and ECDSA beside it, RSA and
// ECDSA alone, and none.
func hsConfigs(t *testing.T) []*hsRef {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []*hsRef{
		newHSRef(t, gwSecret, nil, nil, "", ""),
		newHSRef(t, gwSecret, nil, nil, "api", "api"),
		newHSRef(t, gwSecret, nil, nil, "api", ""),
		newHSRef(t, gwSecret, &rk.PublicKey, &ek.PublicKey, "", ""),
		newHSRef(t, "", &rk.PublicKey, &ek.PublicKey, "", ""),
		newHSRef(t, "", nil, nil, "", ""),
	}
}

// TestReviewHSQuirks compares verify with the parser it replaced on the
// quirk tokens, for each configuration, and checks that verifyHS took
// the fast-header tokens exactly when an HMAC secret is configured.
func TestReviewHSQuirks(t *testing.T) {
	toks := hsQuirkTokens(gwSecret)
	for _, r := range hsConfigs(t) {
		nfast := 0
		for _, tok := range toks {
			if r.check(t, tok) {
				nfast++
				if len(r.secret) == 0 {
					t.Fatalf("verifyHS took %q with no secret", tok)
				}
			}
		}
		if len(r.secret) > 0 && nfast < len(toks)/2 {
			t.Fatalf("verifyHS took %d of %d tokens", nfast, len(toks))
		}
		t.Logf("secret %q: %d tokens, %d through verifyHS", r.secret, len(toks), nfast)
	}
}

// FuzzReviewHSToken fuzzes whole tokens: a fast header or any header,
// any payload and signature segments (raw strings, so line breaks,
// padding, stray bytes and separators all reach the decoders), either
// signed or not; verify must answer as the parser did for every
// configuration.
func FuzzReviewHSToken(f *testing.F) {
	hs := hsHeaderList()
	for _, tok := range hsQuirkTokens(gwSecret) {
		h, rest, _ := strings.Cut(tok, ".")
		p, s, _ := strings.Cut(rest, ".")
		f.Add(uint8(0), h, p, s, uint8(0))
	}
	f.Add(uint8(1), "", b64(`{"sub":"u"}`), "", uint8(1))
	var refs []*hsRef
	f.Fuzz(func(t *testing.T, hi uint8, header, payload, sig string, mode uint8) {
		if refs == nil {
			refs = hsConfigs(t)
		}
		if mode&1 != 0 || header == "" {
			header = hs[int(hi)%len(hs)]
		}
		var tok string
		switch {
		case mode&2 != 0: // payload is JSON: encode it, sign with the header's hash
			payload = b64(payload)
			alg, ok := hsHeaders[header]
			if !ok {
				alg = int(hi) % 3
			}
			tok = header + "." + payload + "." + hsSign(alg, []byte(gwSecret), header+"."+payload) + sig
		case mode&4 != 0: // sign as is, with the header's hash
			alg := hsHeaders[header]
			tok = header + "." + payload + "." + hsSign(alg, []byte(gwSecret), header+"."+payload)
		default:
			tok = header + "." + payload + "." + sig
		}
		for _, r := range refs {
			r.check(t, tok)
		}
	})
}
