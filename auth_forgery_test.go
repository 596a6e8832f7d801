package wsgate

import (
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestGatewayEmptyKeyForgery: with no key configured for a token kind, a
// token signed with HS256 and an empty secret verifies against nothing:
// a connection token is refused with 3500, a subscription token with
// 103 permission denied.
func TestGatewayEmptyKeyForgery(t *testing.T) {
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "admin"}).SignedString([]byte{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gwConfig()
	cfg.Client.Token = TokenConfig{}
	cfg.Client.AllowAnonymousConnectWithoutToken = true
	n := startNode(t, cfg)
	g := dialNode(t, n.addr, false)
	g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: forged}})
	g.expectClose(3500)

	cfg = gwConfig()
	cfg.Client.SubscriptionToken.Enabled = true // without a key of its own
	n = startNode(t, cfg)
	g = dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "admin"}))
	subTok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "admin", "channel": "private:x"}).SignedString([]byte{})
	if err != nil {
		t.Fatal(err)
	}
	r := g.subscribe(&protocol.SubscribeRequest{Channel: "private:x", Token: subTok})
	if r.Error == nil || r.Error.Code != 103 {
		t.Fatalf("subscribe with a forged token: %+v", r)
	}
}

// TestGatewaySubscriptionTokenIsNoConnectionToken: a token with a
// channel claim, signed with the right key, is refused as a connection
// token with 3500, as Centrifugo does.
func TestGatewaySubscriptionTokenIsNoConnectionToken(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, false)
	g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: token(t, jwt.MapClaims{"sub": "u", "channel": "chat:x"})}})
	r, err := g.next()
	if ce, ok := err.(closedError); !ok || ce.code != 3500 {
		t.Fatalf("connect with a subscription token: %+v %v; want close 3500", r, err)
	}
}
