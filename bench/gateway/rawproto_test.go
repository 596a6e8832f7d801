package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The protocol's answers to bad or unsupported commands, over a plain
// WebSocket with the JSON protocol: what SDKs rely on beyond the happy
// path. A case optionally connects, then sends frames, each expecting a
// reply line (containing reply) or a close with a code.

type rawStep struct {
	send  string
	reply string // a substring of the next reply line, or
	close int    // the close code that ends the connection
}

type rawCase struct {
	name    string
	connect bool // send a valid connect first (its reply is checked and skipped)
	steps   []rawStep
}

func TestRawProtocolAnswers(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		twice := `{"id":2,"subscribe":{"channel":"` + channelName(NSChat, "twice") + `"}}`
		other := tg.Token(Claims{Sub: "someone-else", Exp: time.Now().Add(time.Hour).Unix()})
		notAvailable := func(id int) string {
			return fmt.Sprintf(`{"id":%d,"error":{"code":108,"message":"not available"}}`, id)
		}
		cases := []rawCase{
			{name: "malformed JSON", steps: []rawStep{{send: `{nope`, close: 3501}}},
			{name: "command before connect", steps: []rawStep{{send: `{"id":1,"subscribe":{"channel":"chat:x"}}`, close: 3501}}},
			{name: "connect without token", steps: []rawStep{{send: `{"id":1,"connect":{}}`, close: 3501}}},
			{name: "expired token", steps: []rawStep{{send: connectCmd(tg, time.Now().Add(-time.Minute)),
				reply: `{"id":1,"error":{"code":109,"message":"token expired"}}`}}},
			{name: "unknown namespace", connect: true, steps: []rawStep{{send: `{"id":2,"subscribe":{"channel":"nosuchns:x"}}`,
				reply: `{"id":2,"error":{"code":102,"message":"unknown channel"}}`}}},
			{name: "not implemented", connect: true, steps: []rawStep{
				{send: `{"id":2,"presence":{"channel":"chat:x"}}`, reply: notAvailable(2)},
				{send: `{"id":3,"presence_stats":{"channel":"chat:x"}}`, reply: notAvailable(3)},
				{send: `{"id":4,"rpc":{"method":"m"}}`, reply: notAvailable(4)},
			}},
			{name: "history not allowed", connect: true, steps: []rawStep{{send: `{"id":2,"history":{"channel":"chat:x","limit":1}}`,
				reply: `{"id":2,"error":{"code":103,"message":"permission denied"}}`}}},
			{name: "publish not allowed", connect: true, steps: []rawStep{{send: `{"id":2,"publish":{"channel":"feed:x","data":{}}}`,
				reply: `{"id":2,"error":{"code":103,"message":"permission denied"}}`}}},
			{name: "subscribe twice", connect: true, steps: []rawStep{
				{send: twice, reply: `"recoverable":true`},
				{send: strings.Replace(twice, `"id":2`, `"id":3`, 1), reply: `{"id":3,"error":{"code":105,"message":"already subscribed"}}`},
			}},
			{name: "refresh as another user", connect: true, steps: []rawStep{
				{send: `{"id":2,"refresh":{"token":"` + other + `"}}`, close: 3500},
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				rawExchange(t, tg, c)
			})
		}
	})
}

func connectCmd(tg *Target, exp time.Time) string {
	b, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{
		"token": tg.Token(Claims{Sub: "raw", Exp: exp.Unix()}),
	}})
	return string(b)
}

// rawExchange runs one rawCase on a new connection.
func rawExchange(t *testing.T, tg *Target, c rawCase) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, tg.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	var lines []string
	next := func() (string, error) {
		for len(lines) == 0 {
			_, b, err := conn.Read(ctx)
			if err != nil {
				return "", err
			}
			lines = strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		}
		l := lines[0]
		lines = lines[1:]
		return l, nil
	}
	steps := c.steps
	if c.connect {
		steps = append([]rawStep{{send: connectCmd(tg, time.Now().Add(time.Hour)), reply: `{"id":1,"connect":{"client":`}}, steps...)
	}
	for _, s := range steps {
		if err := conn.Write(ctx, websocket.MessageText, []byte(s.send)); err != nil {
			t.Fatalf("send %.80s: %v", s.send, err)
		}
		l, err := next()
		if s.close != 0 {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || int(ce.Code) != s.close {
				t.Errorf("after %.80s: got %q, %v; want close %d", s.send, l, err, s.close)
			} else {
				t.Logf("close %d %q", ce.Code, ce.Reason)
			}
			return
		}
		if err != nil || !strings.Contains(l, s.reply) {
			t.Fatalf("after %.80s: reply %q, %v; want %s", s.send, l, err, s.reply)
		}
	}
}
