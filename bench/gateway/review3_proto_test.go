package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Review of the client protocol against Centrifugo v6.9.1: each case was
// run against both servers; Centrifugo's answer, quoted beside it, is the
// expected one, and wsgate's differs (the test fails for wsgate only).

// connectWith returns a connect command (id 1) with an HS256 token of
// claims signed with tg's secret.
func connectWith(tg *Target, claims map[string]any) string {
	b, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": HS256(tg.Config.Secret, claims)}})
	return string(b)
}

// TestReview3PrivateChannelNeedsToken: a channel whose name starts with
// "$" is private in Centrifugo (channel.private_prefix, default "$"): a
// client may subscribe to it only with a subscription token, whatever
// the namespace allows. Centrifugo v6.9.1 answers
// {"id":2,"error":{"code":103,"message":"permission denied"}}; wsgate
// subscribes the client ({"id":2,"subscribe":{}}), so any user reads a
// channel the application protected by the prefix.
func TestReview3PrivateChannelNeedsToken(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		ch := "$" + channelName("", "private")
		rawExchange(t, tg, rawCase{connect: true, steps: []rawStep{
			{send: `{"id":2,"subscribe":{"channel":"` + ch + `"}}`,
				reply: `{"id":2,"error":{"code":103,"message":"permission denied"}}`},
		}})
	})
}

// TestReview3ConnectTokenClaims: connection token claims Centrifugo
// reads that wsgate reads otherwise, or not at all.
func TestReview3ConnectTokenClaims(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		now := time.Now()
		cases := []rawCase{
			// expire_at sets the connection's expiry (exp only the token's):
			// Centrifugo answers "expires":true,"ttl":3600 and disconnects
			// with 3005 when it is not refreshed; wsgate ignores the claim
			// (no "expires"): the connection never expires.
			{name: "expire_at", steps: []rawStep{{
				send:  connectWith(tg, map[string]any{"sub": "u", "expire_at": now.Add(time.Hour).Unix()}),
				reply: `"expires":true`,
			}}},
			// A token not valid yet (nbf in the future, a clock skew):
			// Centrifugo answers {"id":1,"error":{"code":109,"message":
			// "token expired"}} and keeps the connection, so the SDK
			// gets a new token; wsgate closes with 3500 "invalid token",
			// a terminal code: the SDK never reconnects.
			{name: "nbf in the future", steps: []rawStep{{
				send:  connectWith(tg, map[string]any{"sub": "u", "nbf": now.Add(time.Hour).Unix()}),
				reply: `{"id":1,"error":{"code":109,"message":"token expired"}}`,
			}}},
			// A channels claim with a channel of no namespace: Centrifugo
			// refuses the connect, {"id":1,"error":{"code":102,"message":
			// "unknown channel"}}; wsgate connects and drops the channel
			// silently.
			{name: "channels claim with an unknown namespace", steps: []rawStep{{
				send:  connectWith(tg, map[string]any{"sub": "u", "channels": []string{"nosuchns:x", "chat:" + channelName("", "ok")}}),
				reply: `{"id":1,"error":{"code":102,"message":"unknown channel"}}`,
			}}},
			// b64info that is not base64: Centrifugo answers
			// {"id":1,"error":{"code":100,"message":"internal server
			// error","temporary":true}}; wsgate connects without info.
			{name: "bad b64info", steps: []rawStep{{
				send:  connectWith(tg, map[string]any{"sub": "u", "b64info": "!!!"}),
				reply: `{"id":1,"error":{"code":100,"message":"internal server error"`,
			}}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				rawExchange(t, tg, c)
			})
		}
	})
}

// TestReview3EmptyChannelClaim: an empty name in the channels claim.
// Centrifugo skips it: {"id":1,"connect":{"client":…,"ping":25,
// "pong":true}}; wsgate subscribes the client to the channel "" and
// answers "subs":{"":{}}, a server-side subscription the SDK cannot
// name.
func TestReview3EmptyChannelClaim(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, tg.WS, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		connect := connectWith(tg, map[string]any{"sub": "u", "channels": []string{""}})
		if err := conn.Write(ctx, websocket.MessageText, []byte(connect)); err != nil {
			t.Fatal(err)
		}
		_, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), `{"id":1,"connect":`) || strings.Contains(string(b), `"subs":{"":`) {
			t.Errorf("connect reply %s; want a connect result without a subscription to \"\"", b)
		}
	})
}

// TestReview3SendWithoutHandler: a send (an asynchronous message) where
// no handler is configured. Centrifugo v6.9.1 closes the connection with
// 3508 "not available" (so the client learns its messages go nowhere);
// wsgate drops the message silently and keeps the connection.
func TestReview3SendWithoutHandler(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		rawExchange(t, tg, rawCase{connect: true, steps: []rawStep{
			{send: `{"send":{"data":{"x":1}}}` + "\n" + `{"id":2,"unsubscribe":{"channel":"x"}}`, close: 3508},
		}})
	})
}
