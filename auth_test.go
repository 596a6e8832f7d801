package wsgate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

func pemPublic(t *testing.T, pub any) string {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b}))
}

// TestGatewayAsymmetricTokens: RS256 and ES256 connection tokens verify
// with the configured public keys; a token signed by another key, or with
// HS256 when no HMAC secret is configured, is refused with 3500.
func TestGatewayAsymmetricTokens(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := gwConfig()
	cfg.Client.Token = TokenConfig{RSAPublicKey: pemPublic(t, &rk.PublicKey), ECDSAPublicKey: pemPublic(t, &ek.PublicKey)}
	n := startNode(t, cfg)
	sign := func(m jwt.SigningMethod, key any) string {
		s, err := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "k", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tok := range []string{sign(jwt.SigningMethodRS256, rk), sign(jwt.SigningMethodES256, ek)} {
		g := dialNode(t, n.addr, false)
		if res := g.connect(tok); !res.Expires {
			t.Fatalf("connect %+v", res)
		}
	}
	for _, tok := range []string{sign(jwt.SigningMethodES256, other), sign(jwt.SigningMethodHS256, []byte(gwSecret))} {
		g := dialNode(t, n.addr, true)
		g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: tok}})
		g.expectClose(3500)
	}
}

// TestGatewaySubscriptionTokens: sub_refresh extends a subscription
// token; a subscription whose token expires without a refresh closes the
// connection with 3006; a token for another user disconnects with 3500.
func TestGatewaySubscriptionTokens(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.ExpiredSubCloseDelay = Duration(time.Second)
	n := startNode(t, cfg)
	formats(t, func(t *testing.T, pb bool) {
		subTok := func(user string, exp time.Duration) string {
			return token(t, jwt.MapClaims{"sub": user, "channel": "private:s", "exp": time.Now().Add(exp).Unix()})
		}
		g := dialNode(t, n.addr, pb)
		g.connect(token(t, jwt.MapClaims{"sub": "u"}))
		r := g.subscribe(&protocol.SubscribeRequest{Channel: "private:s", Token: subTok("u", 2*time.Second)})
		if r.Error != nil || !r.Subscribe.Expires || r.Subscribe.Ttl > 2 {
			t.Fatalf("subscribe %+v", r)
		}
		r = g.call(&protocol.Command{SubRefresh: &protocol.SubRefreshRequest{Channel: "private:s", Token: subTok("u", time.Hour)}})
		if r.SubRefresh == nil || !r.SubRefresh.Expires || r.SubRefresh.Ttl < 3500 {
			t.Fatalf("sub_refresh %+v", r)
		}
		time.Sleep(3500 * time.Millisecond)
		if r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
			t.Fatalf("after refresh: %+v", r)
		}
		// An expired subscription token on subscribe: error 109.
		h := dialNode(t, n.addr, pb)
		h.connect(token(t, jwt.MapClaims{"sub": "u"}))
		if r := h.subscribe(&protocol.SubscribeRequest{Channel: "private:s", Token: subTok("u", -time.Minute)}); r.Error == nil || r.Error.Code != 109 {
			t.Fatalf("expired sub token: %+v", r)
		}
		// Another user's token: 3500.
		h.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "private:s", Token: subTok("v", time.Hour)}})
		h.expectClose(3500)
		// Not refreshed: 3006.
		h = dialNode(t, n.addr, pb)
		h.connect(token(t, jwt.MapClaims{"sub": "u"}))
		h.subscribe(&protocol.SubscribeRequest{Channel: "private:s", Token: subTok("u", time.Second)})
		h.expectClose(3006)
	})
}
