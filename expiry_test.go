package wsgate

import (
	"math"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestTokenExpiryBeyond2106: an expiry past what a session's uint32
// seconds hold (2106-02-07) is capped at a year from now, as Centrifugo
// caps it, not wrapped to a time long past: such a connection is not
// closed as expired.
func TestTokenExpiryBeyond2106(t *testing.T) {
	far := int64(math.MaxUint32) + 5
	for _, c := range []*claims{
		{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Unix(far, 0))}},
		{ExpireAt: &far},
	} {
		year := time.Now().Unix() + maxTTL
		if got, lapsed := c.expiry(); lapsed || got < year-5 || got > year {
			t.Errorf("expiry %d (lapsed %v), want %d", got, lapsed, year)
		}
	}

	cfg := gwConfig()
	cfg.Client.ExpiredCloseDelay = Duration(time.Second)
	n := startNode(t, cfg)
	g := dialNode(t, n.addr, false)
	if res := g.connect(token(t, jwt.MapClaims{"sub": "u", "exp": far})); !res.Expires {
		t.Fatalf("connect %+v: no expiry", res)
	}
	// The sweep runs every second and closes an expired connection one
	// second after its expiry: a wrapped expiry (5 s after 1970) would
	// be closed by now.
	time.Sleep(3 * time.Second)
	if r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
		t.Fatalf("ping: %+v", r)
	}
}
