package wsgate

import (
	"math"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestTokenExpiryBeyond2106: an expiry past what a session's uint32
// seconds hold (2106-02-07) is kept as that last second, not wrapped to
// a time long past: such a connection is not closed as expired.
func TestTokenExpiryBeyond2106(t *testing.T) {
	far := int64(math.MaxUint32) + 5
	for _, c := range []*claims{
		{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Unix(far, 0))}},
		{ExpireAt: &far},
	} {
		if got := c.expiry(); got != math.MaxUint32 {
			t.Errorf("expiry %d, want %d", got, int64(math.MaxUint32))
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
