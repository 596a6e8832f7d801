package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Review of the client protocol against Centrifugo v6.9.1: each case runs
// against both servers; Centrifugo's answer, quoted beside it, is the
// one expected of both, unless a case says why wsgate's differs. Where
// a comment says what wsgate answers otherwise, that is what it answered
// before the review's fixes.

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

// review3Frame is a WebSocket message of a review case.
type review3Frame struct {
	binary bool
	data   []byte
}

// review3Answer connects (with the Protobuf subprotocol when pb), sends
// frames and returns the first reply after the connect's, or "close N"
// when the server closes the connection first.
func review3Answer(t *testing.T, tg *Target, pb bool, frames ...review3Frame) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var opts *websocket.DialOptions
	if pb {
		opts = &websocket.DialOptions{Subprotocols: []string{"centrifuge-protobuf"}}
	}
	conn, _, err := websocket.Dial(ctx, tg.WS, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	token := tg.Token(Claims{Sub: "review3", Exp: time.Now().Add(time.Hour).Unix()})
	connect := review3Frame{data: []byte(`{"id":1,"connect":{"token":"` + token + `"}}`)}
	if pb {
		// Command{id: 1, connect: ConnectRequest{token}}, prefixed with
		// its length.
		req := append(binary.AppendUvarint([]byte{0x0a}, uint64(len(token))), token...)
		cmd := append(binary.AppendUvarint([]byte{0x08, 0x01, 0x22}, uint64(len(req))), req...)
		connect = review3Frame{binary: true, data: append(binary.AppendUvarint(nil, uint64(len(cmd))), cmd...)}
	}
	var lines []string
	next := func() (string, error) {
		for len(lines) == 0 {
			_, b, err := conn.Read(ctx)
			if err != nil {
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					return fmt.Sprintf("close %d", ce.Code), nil
				}
				return "", err
			}
			if pb {
				// Replies are split by their varint lengths; the
				// answer is reported as the raw reply bytes.
				for len(b) > 0 {
					l, n := binary.Uvarint(b)
					if n <= 0 || l > uint64(len(b)-n) {
						return "", fmt.Errorf("bad protobuf reply framing %x", b)
					}
					lines = append(lines, string(b[n:n+int(l)]))
					b = b[n+int(l):]
				}
				continue
			}
			lines = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		}
		l := lines[0]
		lines = lines[1:]
		return l, nil
	}
	for _, f := range append([]review3Frame{connect}, frames...) {
		mt := websocket.MessageText
		if f.binary {
			mt = websocket.MessageBinary
		}
		if err := conn.Write(ctx, mt, f.data); err != nil {
			t.Fatal(err)
		}
	}
	first, err := next()
	if err != nil || strings.HasPrefix(first, "close") {
		t.Fatalf("connect: %q, %v", first, err)
	}
	got, err := next()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestReview3CommandValidation: commands Centrifugo v6.9.1 refuses (or
// accepts) where wsgate did the opposite or answered with another code.
// Each case quotes Centrifugo's answer. Where wsgate keeps its own answer
// on purpose, wsgate says what it is and the comment why.
func TestReview3CommandValidation(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		text := func(s string) review3Frame { return review3Frame{data: []byte(s)} }
		unsub := `{"id":2,"unsubscribe":{"channel":"x"}}`
		cases := []struct {
			name   string
			pb     bool
			frames []review3Frame
			want   string // a substring of the answer
			wsgate string // wsgate's answer, where it differs on purpose
		}{
			// A pong without a server ping before it: Centrifugo closes
			// with 3501 ("unnecessary pong"). wsgate takes an empty
			// command for a pong at any time: telling a pong that answers
			// a ping from one that does not takes state per client, and
			// SDKs only pong a ping.
			{"pong before any ping", false, []review3Frame{text(`{}`), text(unsub)}, "close 3501", `{"id":2,"unsubscribe":{}}`},
			// A line "null": Centrifugo 3501, wsgate a pong (as above).
			{"null line", false, []review3Frame{text(`null`), text(unsub)}, "close 3501", `{"id":2,"unsubscribe":{}}`},
			// Protobuf: a zero-length command before any ping (a pong):
			// Centrifugo 3501, wsgate a pong (as above).
			{"protobuf zero-length command", true, []review3Frame{{binary: true, data: []byte{0}},
				{binary: true, data: []byte{7, 0x08, 0x02, 0x32, 0x03, 0x0a, 0x01, 'x'}}}, "close 3501", "\x08\x02\x3a\x00"}, // Reply{id: 2, unsubscribe: {}}
			// A binary message on a JSON connection: Centrifugo decodes it
			// as JSON and answers {"id":2,"unsubscribe":{}}. wsgate closes
			// with 3501: JSON comes in text frames, whose UTF-8 the engine
			// checks; a binary frame's strings could carry invalid UTF-8
			// into the text frames of other clients.
			{"binary message on a JSON connection", false, []review3Frame{{binary: true, data: []byte(unsub)}}, `{"id":2,"unsubscribe":{}}`, "close 3501"},
			// presence without a channel: Centrifugo 3501 (as every other
			// command without one).
			{"presence without channel", false, []review3Frame{text(`{"id":2,"presence":{}}`)}, "close 3501", ""},
			// presence in an unknown namespace: Centrifugo
			// {"id":2,"error":{"code":102,"message":"unknown channel"}}.
			{"presence unknown namespace", false, []review3Frame{text(`{"id":2,"presence":{"channel":"nosuchns:x"}}`)}, `"code":102`, ""},
			// A channel name with an escaped lone surrogate: Centrifugo
			// {"id":2,"error":{"code":107,"message":"bad request"}} (not
			// valid UTF-8). The protocol's JSON decoder, which wsgate uses,
			// decodes the escape to U+FFFD, as encoding/json does: the
			// client is subscribed to "chat:\ufffdx", a valid name.
			{"lone surrogate in channel", false, []review3Frame{text(`{"id":2,"subscribe":{"channel":"chat:\udc00x"}}`)}, `"code":107`, `{"id":2,"subscribe":{`},
			// Protobuf: a channel that is not UTF-8: Centrifugo
			// {"id":2,"error":{"code":107,"message":"bad request"}} and
			// the connection stays. The protocol's Protobuf decoder, which
			// wsgate uses, refuses the command: 3501.
			{"protobuf channel not UTF-8", true, []review3Frame{{binary: true, data: []byte{12, 0x08, 0x02, 0x2a, 0x08, 0x0a, 0x06, 'c', 'h', 'a', 't', ':', 0xff}}}, "\x08\x6b\x12\x0bbad request", "close 3501"}, // Error{code: 107, message: "bad request"}
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				want := c.want
				if tg.Kind == Wsgate && c.wsgate != "" {
					want = c.wsgate
				}
				if got := review3Answer(t, tg, c.pb, c.frames...); !strings.Contains(got, want) {
					t.Errorf("answer %q; want %q", got, want)
				}
			})
		}
	})
}

// TestReview3SubscriptionTokens: subscription token answers that differ
// from Centrifugo v6.9.1 (rawExchange connects as user "raw").
func TestReview3SubscriptionTokens(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		sub := func(id int, ch string, claims map[string]any) string {
			return fmt.Sprintf(`{"id":%d,"subscribe":{"channel":%q,"token":%q}}`, id, ch, HS256(tg.Config.Secret, claims))
		}
		hour := time.Now().Add(time.Hour)
		cases := []rawCase{
			// A token not valid yet (nbf in the future): Centrifugo
			// {"id":2,"error":{"code":109,"message":"token expired"}}, so
			// the SDK fetches a new one; wsgate 103 "permission denied".
			{name: "nbf in the future", connect: true, steps: []rawStep{{
				send:  sub(2, "chat:"+channelName("", "nbf"), map[string]any{"sub": "raw", "nbf": hour.Unix(), "exp": hour.Unix()}),
				reply: `{"id":2,"error":{"code":109,"message":"token expired"}}`,
			}}},
			// A token without a channel claim: Centrifugo {"id":2,"error":
			// {"code":103,"message":"permission denied"}} and the
			// connection stays; wsgate closes it with 3500 "invalid
			// token", which the SDK does not reconnect after.
			{name: "no channel claim", connect: true, steps: []rawStep{{
				send:  sub(2, "chat:"+channelName("", "nochan"), map[string]any{"sub": "raw", "exp": hour.Unix()}),
				reply: `{"id":2,"error":{"code":103,"message":"permission denied"}}`,
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
