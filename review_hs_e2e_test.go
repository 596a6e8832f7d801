package wsgate

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
)

// e2eTok builds a token from its header and claims JSON, signed with
// HMAC of hash h and key (h 0: the signature sig as given).
func e2eTok(header, payload string, h crypto.Hash, key []byte, sig string) string {
	s := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	if h != 0 {
		m := hmac.New(h.New, key)
		m.Write([]byte(s))
		sig = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return s + "." + sig
}

// e2eAnswer is the gateway's answer to a connect with tok, in short:
// "close N", "error N message" or "ok expires=B subs=[...]".
func e2eAnswer(t *testing.T, addr, tok string) string {
	t.Helper()
	g := dialNode(t, addr, false)
	g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: tok}})
	return e2eRead(t, g, tok)
}

// e2eRead reads g's answer to a connect, as e2eAnswer gives it.
func e2eRead(t *testing.T, g *gwClient, tok string) string {
	return e2eReply(t, g, tok, func(r *protocol.Reply) bool { return r.Id == 1 }, func(r *protocol.Reply) string {
		var subs []string
		for s := range r.Connect.Subs {
			subs = append(subs, s)
		}
		slices.Sort(subs)
		return fmt.Sprintf("ok expires=%v subs=%v", r.Connect.Expires, subs)
	})
}

// e2eSubAnswer connects as user u and answers a subscribe to private:x
// with tok as e2eAnswer does.
func e2eSubAnswer(t *testing.T, addr, tok string) string {
	t.Helper()
	g := dialNode(t, addr, false)
	g.connect(token(t, map[string]any{"sub": "u"}))
	g.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "private:x", Token: tok}})
	return e2eReply(t, g, tok, func(r *protocol.Reply) bool { return r.Subscribe != nil || r.Error != nil },
		func(r *protocol.Reply) string { return fmt.Sprintf("ok expires=%v", r.Subscribe.Expires) })
}

// e2eReply reads g's replies until the one mine picks and answers
// "close CODE", "error CODE MESSAGE" or ok(reply).
func e2eReply(t *testing.T, g *gwClient, tok string, mine func(*protocol.Reply) bool, ok func(*protocol.Reply) string) string {
	t.Helper()
	for {
		r, err := g.next()
		var ce closedError
		if errors.As(err, &ce) {
			return fmt.Sprintf("close %d", ce.code)
		}
		if err != nil {
			t.Fatalf("token %q: %v", tok, err)
		}
		switch {
		case !mine(r):
			continue
		case r.Error != nil:
			return fmt.Sprintf("error %d %s", r.Error.Code, r.Error.Message)
		}
		return ok(r)
	}
}

// TestReviewHSGatewayAnswers sends tokens of every kind verifyHS takes or
// leaves to the parser to gateways over real sockets: each gets the
// answer the gateway gave before verifyHS (the same file passes on the
// commit before it).
func TestReviewHSGatewayAnswers(t *testing.T) {
	key := []byte(gwSecret)
	future := time.Now().Add(time.Hour).Unix()
	good := fmt.Sprintf(`{"sub":"u","exp":%d}`, future)
	goodCh := fmt.Sprintf(`{"sub":"u","exp":%d,"channels":["chat:a"]}`, future)
	const (
		h256   = `{"alg":"HS256","typ":"JWT"}`
		h384r  = `{"typ":"JWT","alg":"HS384"}`
		h512   = `{"alg":"HS512"}`
		hKid   = `{"alg":"HS256","typ":"JWT","kid":"k1"}`
		hSpace = `{"alg": "HS256", "typ": "JWT"}`
		hNone  = `{"alg":"none","typ":"JWT"}`
		ok     = "ok expires=true subs=[]"
		closed = "close 3500"
		exp109 = "error 109 token expired"
	)
	g256 := e2eTok(h256, good, crypto.SHA256, key, "")
	sig := g256[strings.LastIndexByte(g256, '.')+1:]
	body := g256[:strings.LastIndexByte(g256, '.')]
	last := strings.IndexByte(base64URLAlpha, sig[len(sig)-1])
	padded := base64.URLEncoding.EncodeToString([]byte(hKid)) + "." + base64.RawURLEncoding.EncodeToString([]byte(good))
	pm := hmac.New(crypto.SHA256.New, key)
	pm.Write([]byte(padded))
	padded += "." + base64.RawURLEncoding.EncodeToString(pm.Sum(nil))
	cases := []struct{ name, tok, want string }{
		{"HS256", e2eTok(h256, goodCh, crypto.SHA256, key, ""), "ok expires=true subs=[chat:a]"},
		{"HS384 reordered", e2eTok(h384r, good, crypto.SHA384, key, ""), ok},
		{"HS512 alg only", e2eTok(h512, good, crypto.SHA512, key, ""), ok},
		{"kid", e2eTok(hKid, good, crypto.SHA256, key, ""), ok},
		{"whitespace header", e2eTok(hSpace, good, crypto.SHA256, key, ""), ok},
		{"padded header", padded, closed},
		{"no exp", e2eTok(h256, `{"sub":"u"}`, crypto.SHA256, key, ""), "ok expires=false subs=[]"},
		{"null claims", e2eTok(h256, `null`, crypto.SHA256, key, ""), "ok expires=false subs=[]"},
		{"expired", e2eTok(h256, `{"sub":"u","exp":1}`, crypto.SHA256, key, ""), exp109},
		{"expired kid", e2eTok(hKid, `{"sub":"u","exp":1}`, crypto.SHA256, key, ""), exp109},
		{"expired and not yet valid", e2eTok(h256, fmt.Sprintf(`{"sub":"u","exp":1,"nbf":%d}`, future), crypto.SHA256, key, ""), exp109},
		{"expired forged", e2eTok(h256, `{"sub":"u","exp":1}`, crypto.SHA256, []byte("x"), ""), closed},
		{"forged", e2eTok(h256, good, crypto.SHA256, []byte("x"), ""), closed},
		{"empty key", e2eTok(h256, good, crypto.SHA256, []byte{}, ""), closed},
		{"none", e2eTok(hNone, good, 0, nil, ""), closed},
		{"none with HS256 signature", e2eTok(hNone, good, crypto.SHA256, key, ""), closed},
		{"HS256 header, HS512 signature", e2eTok(h256, good, crypto.SHA512, key, ""), closed},
		{"HS512 header, HS256 signature", e2eTok(h512, good, crypto.SHA256, key, ""), closed},
		{"truncated signature", body + "." + sig[:len(sig)-1], closed},
		{"extended signature", body + "." + sig + "A", closed},
		{"padded signature", body + "." + sig + "=", closed},
		{"line break in signature", body + "." + sig[:20] + "\n" + sig[20:], ok},
		{"other last bits of signature", body + "." + sig[:len(sig)-1] + string(base64URLAlpha[last^1]), ok},
		{"fourth segment", g256 + "." + sig, closed},
		{"not yet valid", e2eTok(h256, fmt.Sprintf(`{"sub":"u","nbf":%d}`, future), crypto.SHA256, key, ""), exp109}, // as Centrifugo
		{"bad exp", e2eTok(h256, `{"sub":"u","exp":"soon"}`, crypto.SHA256, key, ""), closed},
		{"array claims", e2eTok(h256, `[]`, crypto.SHA256, key, ""), closed},
		{"subscription token", e2eTok(h256, `{"sub":"u","channel":"chat:a"}`, crypto.SHA256, key, ""), closed},
	}
	n := startNode(t, gwConfig())
	for _, c := range cases {
		if got := e2eAnswer(t, n.addr, c.tok); got != c.want {
			t.Errorf("%s: %q, want %q (token %q)", c.name, got, c.want, c.tok)
		}
	}

	sub := func(claims string, k []byte) string { return e2eTok(h256, claims, crypto.SHA256, k, "") }
	for _, c := range []struct{ name, tok, want string }{
		{"subscribe", sub(fmt.Sprintf(`{"sub":"u","channel":"private:x","exp":%d}`, future), key), "ok expires=true"},
		{"subscribe expired", sub(`{"sub":"u","channel":"private:x","exp":1}`, key), exp109},
		{"subscribe forged", sub(`{"sub":"u","channel":"private:x"}`, []byte("x")), "error 103 permission denied"},
		{"subscribe other user", sub(`{"sub":"v","channel":"private:x"}`, key), closed},
	} {
		if got := e2eSubAnswer(t, n.addr, c.tok); got != c.want {
			t.Errorf("%s: %q, want %q (token %q)", c.name, got, c.want, c.tok)
		}
	}

	cfg := gwConfig()
	cfg.Client.Token.Audience, cfg.Client.Token.Issuer = "api", "iss"
	na := startNode(t, cfg)
	for _, c := range []struct{ name, claims, want string }{
		{"audience", fmt.Sprintf(`{"sub":"u","aud":"api","iss":"iss","exp":%d}`, future), ok},
		{"audience list", fmt.Sprintf(`{"sub":"u","aud":["x","api"],"iss":"iss","exp":%d}`, future), ok},
		{"wrong audience", `{"sub":"u","aud":"x","iss":"iss"}`, closed},
		{"no audience", `{"sub":"u","iss":"iss"}`, closed},
		{"wrong issuer", `{"sub":"u","aud":"api","iss":"x"}`, closed},
		{"wrong audience, expired", `{"sub":"u","aud":"x","iss":"x","exp":1}`, closed}, // as Centrifugo: audience before times
	} {
		if got := e2eAnswer(t, na.addr, e2eTok(h256, c.claims, crypto.SHA256, key, "")); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := pemPublic(t, &rk.PublicKey)
	cfg = gwConfig()
	cfg.Client.Token = TokenConfig{RSAPublicKey: pub}
	nr := startNode(t, cfg)
	for _, c := range []struct{ name, tok string }{
		{"HS256 on an RSA gateway", e2eTok(h256, good, crypto.SHA256, key, "")},
		{"HS256 keyed with the RSA public key", e2eTok(h256, good, crypto.SHA256, []byte(pub), "")},
		{"HS256 keyed with nothing", e2eTok(h256, good, crypto.SHA256, nil, "")},
	} {
		if got := e2eAnswer(t, nr.addr, c.tok); got != closed {
			t.Errorf("%s: %q, want %q", c.name, got, closed)
		}
	}
}

const base64URLAlpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestReviewHSGatewayManyConnects opens many connections, then sends
// each a connect with a token of its own (valid with a channel of its
// own, expired, forged, of each hash) before reading any answer, so
// that the gateway verifies them side by side: each connection gets its
// own token's answer, its own channel included.
func TestReviewHSGatewayManyConnects(t *testing.T) {
	n := startNode(t, gwConfig())
	key := []byte(gwSecret)
	future := time.Now().Add(time.Hour).Unix()
	hdrs := []string{`{"alg":"HS256","typ":"JWT"}`, `{"typ":"JWT","alg":"HS384"}`, `{"alg":"HS512"}`}
	hashes := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
	const conns = 150
	gs := make([]*gwClient, conns)
	want := make([]string, conns)
	toks := make([]string, conns)
	for i := range conns {
		gs[i] = dialNode(t, n.addr, i%2 == 1)
		h := i % 3
		pad := strings.Repeat("p", (i%4)*1500) // some past the pooled buffers' bound
		claims := fmt.Sprintf(`{"sub":"u%d","exp":%d,"channels":["chat:c%d"],"info":{"pad":%q}}`, i, future, i, pad)
		k := key
		want[i] = fmt.Sprintf("ok expires=true subs=[chat:c%d]", i)
		switch i % 5 {
		case 3:
			claims = fmt.Sprintf(`{"sub":"u%d","exp":1,"info":{"pad":%q}}`, i, pad)
			want[i] = "error 109 token expired"
		case 4:
			k = []byte("forged")
			want[i] = "close 3500"
		}
		toks[i] = e2eTok(hdrs[h], claims, hashes[h], k, "")
	}
	for i, g := range gs {
		g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: toks[i]}})
	}
	for i, g := range gs {
		if got := e2eRead(t, g, toks[i]); got != want[i] {
			t.Errorf("connection %d: %q, want %q", i, got, want[i])
		}
	}
}
