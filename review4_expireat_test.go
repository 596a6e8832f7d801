package wsgate

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// Review of the expire_at claim against Centrifugo v6.9.1 (answers
// quoted from runs of both servers with the same configuration).

// TestReview4ExpireAtPastConnect: a connection token whose expire_at has
// passed (exp still valid, or no exp) is refused by Centrifugo:
//
//	{"id":1,"error":{"code":110,"message":"expired"}}
//
// wsgate connects the client ({"expires":true,"ttl":1}), subscribes it
// to its channels claim, and closes it only at the expiry check, after
// client.expired_close_delay (25 s by default).
func TestReview4ExpireAtPastConnect(t *testing.T) {
	n := startNode(t, gwConfig())
	now := time.Now().Unix()
	for _, c := range []jwt.MapClaims{
		{"sub": "u", "expire_at": now - 60},
		{"sub": "u", "exp": now + 3600, "expire_at": now - 60},
	} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			g := dialNode(t, n.addr, false)
			r := g.call(&protocol.Command{Connect: &protocol.ConnectRequest{Token: token(t, c)}})
			if r.Error == nil || r.Error.Code != 110 {
				t.Errorf("connect: %+v; Centrifugo: error 110 expired", r)
			}
		})
	}
}

// TestReview4ExpireAtPastSubscribe: a subscription token whose expire_at
// has passed is refused by Centrifugo:
//
//	{"id":2,"error":{"code":110,"message":"expired"}}
//
// wsgate subscribes the client to the private channel
// ({"subscribe":{"expires":true,"ttl":1}}) and recovers its history for
// it: a grant the application let lapse still reads the channel, until
// the expiry check and client.expired_sub_close_delay.
func TestReview4ExpireAtPastSubscribe(t *testing.T) {
	n := startNode(t, gwConfig())
	const ch = "$grant"
	for i := range 3 {
		n.publishAPI(t, ch, fmt.Sprintf(`{"i":%d}`, i))
	}
	m := n.apiCall(t, "history", map[string]any{"channel": ch})
	epoch := m["result"].(map[string]any)["epoch"].(string)
	now := time.Now().Unix()
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u", "exp": now + 3600}))
	r := g.subscribe(&protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: epoch,
		Token: token(t, jwt.MapClaims{"sub": "u", "channel": ch, "exp": now + 3600, "expire_at": now - 60})})
	if r.Error == nil || r.Error.Code != 110 {
		pubs := 0
		if r.Subscribe != nil {
			pubs = len(r.Subscribe.Publications)
		}
		t.Errorf("subscribe with a lapsed expire_at: %+v (%d publications recovered); Centrifugo: error 110 expired", r, pubs)
	}
}

// TestReview4ExpireAtPastRefresh: a refresh token whose expire_at has
// passed is refused by Centrifugo ({"id":2,"error":{"code":110,
// "message":"expired"}}); wsgate refreshes ({"expires":true,"ttl":1}).
func TestReview4ExpireAtPastRefresh(t *testing.T) {
	n := startNode(t, gwConfig())
	now := time.Now().Unix()
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u", "exp": now + 3600}))
	r := g.call(&protocol.Command{Refresh: &protocol.RefreshRequest{Token: token(t, jwt.MapClaims{"sub": "u", "expire_at": now - 60})}})
	if r.Error == nil || r.Error.Code != 110 {
		t.Errorf("refresh with a lapsed expire_at: %+v; Centrifugo: error 110 expired", r)
	}
}

// TestReview4ExpireAtBeyondUint32: an expiry past 2106 (2^32 Unix
// seconds) wraps when stored in 32 bits: expire_at = 2^32 + now + 100
// makes a connection that the client is told, and the server believes,
// expires in 100 s. Centrifugo answers {"expires":true,"ttl":31536000}
// (its cap of a year) to the connect and to a refresh with that claim.
func TestReview4ExpireAtBeyondUint32(t *testing.T) {
	n := startNode(t, gwConfig())
	far := int64(1)<<32 + time.Now().Unix() + 100
	g := dialNode(t, n.addr, false)
	res := g.connect(token(t, jwt.MapClaims{"sub": "u", "expire_at": far}))
	if !res.Expires || res.Ttl < 31536000-60 || res.Ttl > 31536000 {
		t.Errorf("connect with expire_at %d: expires %v ttl %d; Centrifugo: ttl 31536000", far, res.Expires, res.Ttl)
	}
	r := g.call(&protocol.Command{Refresh: &protocol.RefreshRequest{Token: token(t, jwt.MapClaims{"sub": "u", "expire_at": far})}})
	if r.Refresh == nil || r.Refresh.Ttl < 31536000-60 || r.Refresh.Ttl > 31536000 {
		t.Errorf("refresh with expire_at %d: %+v; Centrifugo: ttl 31536000", far, r)
	}
}

// TestReview4ExpFarFutureClosedAsExpired: exp 1e10 (year 2286), a valid
// token, is stored as uint32(1e10), a time of 2014: the expiry check
// closes the connection with 3005 "expired" at its next tick (here
// client.expired_close_delay is 1 s). Centrifugo v6.9.1 keeps it
// (connect answered {"expires":true,"ttl":31536000}).
func TestReview4ExpFarFutureClosedAsExpired(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.ExpiredCloseDelay = Duration(time.Second)
	n := startNode(t, cfg)
	g := dialNode(t, n.addr, false)
	res := g.connect(token(t, jwt.MapClaims{"sub": "u", "exp": 1e10}))
	// The check runs every second: 4 s is past its tick and the delay.
	g.c.SetReadDeadline(time.Now().Add(4 * time.Second))
	r, err := g.next()
	var ce closedError
	if errors.As(err, &ce) {
		t.Errorf("connection with exp 1e10 (connect ttl %d) closed: %v; Centrifugo keeps it", res.Ttl, ce)
	} else if err == nil {
		t.Logf("reply %+v", r)
	}
}
