package wsgate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/codec"
)

// formats runs f for the JSON and the Protobuf protocol.
func formats(t *testing.T, f func(t *testing.T, pb bool)) {
	t.Run("json", func(t *testing.T) { f(t, false) })
	t.Run("protobuf", func(t *testing.T) { f(t, true) })
}

func TestGatewayConnect(t *testing.T) {
	n := startNode(t, gwConfig())
	formats(t, func(t *testing.T, pb bool) {
		g := dialNode(t, n.addr, pb)
		exp := time.Now().Add(time.Hour).Unix()
		res := g.connect(token(t, jwt.MapClaims{"sub": "alice", "exp": exp}))
		if res.Client == "" || res.Version != Version || res.Ping != 25 || !res.Pong {
			t.Fatalf("connect result %+v", res)
		}
		if !res.Expires || res.Ttl < 3590 || res.Ttl > 3600 {
			t.Fatalf("expires %v ttl %d", res.Expires, res.Ttl)
		}
		// The ping command is answered.
		if r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil || r.Error != nil {
			t.Fatalf("ping reply %+v", r)
		}
	})
}

func TestGatewayTokens(t *testing.T) {
	n := startNode(t, gwConfig())
	formats(t, func(t *testing.T, pb bool) {
		// Wrong signature: disconnect 3500 (invalid token).
		bad, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x"}).SignedString([]byte("other"))
		g := dialNode(t, n.addr, pb)
		g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: bad}})
		g.expectClose(3500)

		// Expired token: error 109, the connection stays for a retry.
		g = dialNode(t, n.addr, pb)
		r := g.call(&protocol.Command{Connect: &protocol.ConnectRequest{Token: token(t, jwt.MapClaims{"sub": "x", "exp": time.Now().Add(-time.Minute).Unix()})}})
		if r.Error == nil || r.Error.Code != 109 {
			t.Fatalf("expired token: %+v", r)
		}
		g.connect(token(t, jwt.MapClaims{"sub": "x"}))

		// A second connect is a bad request.
		g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: token(t, jwt.MapClaims{"sub": "x"})}})
		g.expectClose(3501)
	})
}

func TestGatewayBadInput(t *testing.T) {
	n := startNode(t, gwConfig())
	cases := []struct {
		name string
		pb   bool
		send func(g *gwClient)
	}{
		{"command before connect", false, func(g *gwClient) {
			g.send(&protocol.Command{Subscribe: &protocol.SubscribeRequest{Channel: "a"}})
		}},
		{"malformed json", false, func(g *gwClient) { g.writeFrame(codec.OpText, []byte(`{"id":1,"connect":`)) }},
		{"malformed protobuf", true, func(g *gwClient) { g.writeFrame(codec.OpBinary, []byte{5, 0xff, 0xff}) }},
		{"binary frame on json", false, func(g *gwClient) { g.writeFrame(codec.OpBinary, []byte(`{"id":1}`)) }},
		{"text frame on protobuf", true, func(g *gwClient) { g.writeFrame(codec.OpText, []byte(`{}`)) }},
		{"no method", false, func(g *gwClient) { g.writeFrame(codec.OpText, []byte(`{"id":1}`)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := dialNode(t, n.addr, c.pb)
			c.send(g)
			g.expectClose(3501)
		})
	}
	t.Run("wrong path", func(t *testing.T) {
		// dialPath fails the test on a status other than 101: check by hand.
		st := httpStatusOfUpgrade(t, n.addr, "/other")
		if st != 404 {
			t.Fatalf("status %d", st)
		}
	})
}

func TestGatewayNotImplemented(t *testing.T) {
	n := startNode(t, gwConfig())
	formats(t, func(t *testing.T, pb bool) {
		g := dialNode(t, n.addr, pb)
		g.connect(token(t, jwt.MapClaims{"sub": "u"}))
		for _, c := range []struct {
			cmd  *protocol.Command
			code uint32
		}{
			{&protocol.Command{Presence: &protocol.PresenceRequest{Channel: "a"}}, 108},
			{&protocol.Command{PresenceStats: &protocol.PresenceStatsRequest{Channel: "a"}}, 108},
			{&protocol.Command{Rpc: &protocol.RPCRequest{Method: "m"}}, 108},
		} {
			if r := g.call(c.cmd); r.Error == nil || r.Error.Code != c.code {
				t.Fatalf("%+v: reply %+v, want error %d", c.cmd, r, c.code)
			}
		}
		// A send has no reply, and no handler: as Centrifugo without
		// one, the client is disconnected with 3508.
		g.send(&protocol.Command{Send: &protocol.SendRequest{Data: []byte(`{}`)}})
		g.expectClose(3508)
	})
}

// TestGatewayFanOut: publications from the API reach subscribers of both
// formats in order, with contiguous offsets.
func TestGatewayFanOut(t *testing.T) {
	n := startNode(t, gwConfig())
	var gs []*gwClient
	for _, pb := range []bool{false, true, false, true} {
		g := dialNode(t, n.addr, pb)
		g.connect(token(t, jwt.MapClaims{"sub": "u"}))
		r := g.subscribe(&protocol.SubscribeRequest{Channel: "prices"})
		if r.Error != nil || !r.Subscribe.Recoverable || !r.Subscribe.Positioned || r.Subscribe.Epoch == "" {
			t.Fatalf("subscribe %+v", r)
		}
		gs = append(gs, g)
	}
	const N = 50
	for i := 1; i <= N; i++ {
		if off := n.publishAPI(t, "prices", fmt.Sprintf(`{"n":%d}`, i)); off != uint64(i) {
			t.Fatalf("publish %d got offset %d", i, off)
		}
	}
	for _, g := range gs {
		for i := 1; i <= N; i++ {
			p := g.pub("prices")
			if p.Offset != uint64(i) || string(p.Data) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("pb=%v: publication %d: offset %d data %s", g.pb, i, p.Offset, p.Data)
			}
		}
	}
}

func TestGatewayRecovery(t *testing.T) {
	n := startNode(t, gwConfig())
	formats(t, func(t *testing.T, pb bool) {
		ch := "rec-" + fmt.Sprint(pb)
		tok := token(t, jwt.MapClaims{"sub": "u"})
		g := dialNode(t, n.addr, pb)
		g.connect(tok)
		n.publishAPI(t, ch, `"before"`)
		r := g.subscribe(&protocol.SubscribeRequest{Channel: ch})
		epoch, offset := r.Subscribe.Epoch, r.Subscribe.Offset
		if offset != 1 {
			t.Fatalf("offset %d", offset)
		}
		g.c.Close()
		for i := 0; i < 20; i++ {
			n.publishAPI(t, ch, fmt.Sprintf(`%d`, i))
		}
		g = dialNode(t, n.addr, pb)
		g.connect(tok)
		r = g.subscribe(&protocol.SubscribeRequest{Channel: ch, Recover: true, Epoch: epoch, Offset: offset})
		s := r.Subscribe
		if !s.Recovered || !s.WasRecovering || len(s.Publications) != 20 || s.Offset != 21 || s.Epoch != epoch {
			t.Fatalf("recovery: recovered %v pubs %d offset %d", s.Recovered, len(s.Publications), s.Offset)
		}
		for i, p := range s.Publications {
			if p.Offset != uint64(i+2) || string(p.Data) != fmt.Sprint(i) {
				t.Fatalf("recovered %d: offset %d data %s", i, p.Offset, p.Data)
			}
		}
		// The next publication arrives live, right after.
		n.publishAPI(t, ch, `"live"`)
		if p := g.pub(ch); p.Offset != 22 {
			t.Fatalf("live offset %d", p.Offset)
		}

		// A wrong epoch, or a position older than the history, is not
		// recovered: no publications, the current position.
		for _, req := range []*protocol.SubscribeRequest{
			{Channel: ch, Recover: true, Epoch: "nope", Offset: 5},
			{Channel: "private:x", Recover: true, Epoch: "", Offset: 0},
		} {
			g := dialNode(t, n.addr, pb)
			g.connect(tok)
			if req.Channel == "private:x" {
				// 10 publications of history: 15 published, offset 0 is gone.
				for i := 0; i < 15; i++ {
					n.publishAPI(t, "private:x", `1`)
				}
				req.Token = token(t, jwt.MapClaims{"sub": "u", "channel": "private:x"})
				req.Epoch = n.position(t, "private:x").Epoch
			}
			r := g.subscribe(req)
			if r.Error != nil || r.Subscribe.Recovered || len(r.Subscribe.Publications) != 0 || r.Subscribe.Offset == 0 {
				t.Fatalf("%+v: %+v", req, r)
			}
			g.c.Close()
		}
	})
}

// position reads a channel's stream position through the API.
func (n *gwNode) position(t *testing.T, ch string) StreamPosition {
	m := n.apiCall(t, "history", map[string]any{"channel": ch})
	res := m["result"].(map[string]any)
	off, _ := res["offset"].(float64)
	return StreamPosition{Offset: uint64(off), Epoch: res["epoch"].(string)}
}

// TestGatewayRecoveryRace: subscribers that resubscribe with recovery
// while publications are being made see every offset exactly once, in
// order.
func TestGatewayRecoveryRace(t *testing.T) {
	cfg := gwConfig()
	cfg.Channel.WithoutNamespace.HistorySize = 1000
	cfg.Client.RecoveryMaxPublicationLimit = 1000
	n := startNode(t, cfg)
	const ch, total = "race", 600
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			if _, err := n.Publish(ch, []byte(fmt.Sprint(i)), PublishOptions{}); err != nil {
				t.Error(err)
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		close(stop)
	}()
	tok := token(t, jwt.MapClaims{"sub": "u"})
	for w := 0; w < 4; w++ {
		pb := w%2 == 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			var epoch string
			var last uint64
			for round := 0; ; round++ {
				g := dialNode(t, n.addr, pb)
				g.connect(tok)
				r := g.subscribe(&protocol.SubscribeRequest{Channel: ch, Recover: round > 0, Epoch: epoch, Offset: last})
				s := r.Subscribe
				if round > 0 && !s.Recovered {
					t.Errorf("round %d not recovered from %d", round, last)
					return
				}
				epoch = s.Epoch
				if round == 0 {
					last = s.Offset
				}
				for _, p := range s.Publications {
					if p.Offset != last+1 {
						t.Errorf("recovered offset %d after %d", p.Offset, last)
						return
					}
					last = p.Offset
				}
				if last != s.Offset {
					t.Errorf("reply offset %d, last recovered %d", s.Offset, last)
					return
				}
				// Take some live publications, then drop the connection.
				for k := 0; k < 30 && last < total; k++ {
					p := g.pub(ch)
					if p.Offset != last+1 {
						t.Errorf("live offset %d after %d", p.Offset, last)
						return
					}
					last = p.Offset
				}
				g.c.Close()
				if last == total {
					return
				}
			}
		}()
	}
	wg.Wait()
	<-stop
}

func TestGatewayServerSideChannels(t *testing.T) {
	n := startNode(t, gwConfig())
	formats(t, func(t *testing.T, pb bool) {
		g := dialNode(t, n.addr, pb)
		ch := "private:ss-" + fmt.Sprint(pb)
		res := g.connect(token(t, jwt.MapClaims{"sub": "u", "channels": []string{ch, ch, ""}}))
		s := res.Subs[ch]
		if s == nil || !s.Recoverable || len(res.Subs) != 1 {
			t.Fatalf("subs %+v", res.Subs)
		}
		n.publishAPI(t, ch, `{"a":1}`)
		if p := g.pub(ch); p.Offset != s.Offset+1 || string(p.Data) != `{"a":1}` {
			t.Fatalf("push %+v", p)
		}
	})
}

func TestGatewayPermissions(t *testing.T) {
	n := startNode(t, gwConfig())
	formats(t, func(t *testing.T, pb bool) {
		g := dialNode(t, n.addr, pb)
		g.connect(token(t, jwt.MapClaims{"sub": "u"}))
		errCode := func(r *protocol.Reply) uint32 {
			if r.Error == nil {
				return 0
			}
			return r.Error.Code
		}
		if c := errCode(g.subscribe(&protocol.SubscribeRequest{Channel: "nope:x"})); c != 102 {
			t.Fatalf("unknown namespace: %d", c)
		}
		if c := errCode(g.subscribe(&protocol.SubscribeRequest{Channel: "private:x"})); c != 103 {
			t.Fatalf("private without token: %d", c)
		}
		r := g.subscribe(&protocol.SubscribeRequest{Channel: "private:x", Token: token(t, jwt.MapClaims{"sub": "u", "channel": "private:x", "exp": time.Now().Add(time.Hour).Unix()})})
		if r.Error != nil || !r.Subscribe.Expires {
			t.Fatalf("private with token: %+v", r)
		}
		if c := errCode(g.subscribe(&protocol.SubscribeRequest{Channel: "private:x"})); c != 105 {
			t.Fatalf("twice: %d", c)
		}
		// Client publish: refused where the namespace does not allow it.
		if c := errCode(g.call(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "news", Data: []byte(`1`)}})); c != 103 {
			t.Fatalf("publish refused: %d", c)
		}
		// Allowed in chat: a subscriber receives it with the publisher's info.
		h := dialNode(t, n.addr, !pb)
		h.connect(token(t, jwt.MapClaims{"sub": "bob"}))
		h.subscribe(&protocol.SubscribeRequest{Channel: "chat:1"})
		if r := g.call(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "chat:1", Data: []byte(`{"m":"hi"}`)}}); r.Error != nil || r.Publish == nil {
			t.Fatalf("publish: %+v", r)
		}
		p := h.pub("chat:1")
		if string(p.Data) != `{"m":"hi"}` || p.Info == nil || p.Info.User != "u" {
			t.Fatalf("publication %+v", p)
		}
		// Unsubscribe, then nothing more arrives; a ping reply comes
		// next.
		h.call(&protocol.Command{Unsubscribe: &protocol.UnsubscribeRequest{Channel: "chat:1"}})
		n.publishAPI(t, "chat:1", `2`)
		if r := h.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
			t.Fatalf("after unsubscribe: %+v", r)
		}
		if len(h.queue) != 0 {
			t.Fatalf("publication after unsubscribe: %+v", h.queue)
		}
	})
}

func TestGatewayHistory(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	for i := 1; i <= 5; i++ {
		n.publishAPI(t, "h", fmt.Sprint(i))
	}
	// History for subscribers only.
	if r := g.call(&protocol.Command{History: &protocol.HistoryRequest{Channel: "h", Limit: -1}}); r.Error == nil || r.Error.Code != 103 {
		t.Fatalf("history before subscribe: %+v", r)
	}
	g.subscribe(&protocol.SubscribeRequest{Channel: "h"})
	r := g.call(&protocol.Command{History: &protocol.HistoryRequest{Channel: "h", Limit: 2, Since: &protocol.StreamPosition{Offset: 2}}})
	if r.Error != nil || len(r.History.Publications) != 2 || r.History.Publications[0].Offset != 3 || r.History.Offset != 5 {
		t.Fatalf("history: %+v", r)
	}
	r = g.call(&protocol.Command{History: &protocol.HistoryRequest{Channel: "h", Limit: 1, Since: &protocol.StreamPosition{Offset: 2, Epoch: "x"}}})
	if r.Error == nil || r.Error.Code != 112 {
		t.Fatalf("history with a wrong epoch: %+v", r)
	}
	m := n.apiCall(t, "history", map[string]any{"channel": "h", "limit": 10, "reverse": true})
	pubs := m["result"].(map[string]any)["publications"].([]any)
	if len(pubs) != 5 || pubs[0].(map[string]any)["offset"].(float64) != 5 {
		t.Fatalf("api history %v", m)
	}
	n.apiCall(t, "history_remove", map[string]any{"channel": "h"})
	m = n.apiCall(t, "history", map[string]any{"channel": "h", "limit": 10})
	if res := m["result"].(map[string]any); len(res["publications"].([]any)) != 0 || res["offset"].(float64) != 5 {
		t.Fatalf("after remove %v", m)
	}
}

func TestGatewayRefreshAndExpiry(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.ExpiredCloseDelay = Duration(time.Second)
	n := startNode(t, cfg)
	formats(t, func(t *testing.T, pb bool) {
		g := dialNode(t, n.addr, pb)
		res := g.connect(token(t, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(2 * time.Second).Unix()}))
		if !res.Expires || res.Ttl > 2 {
			t.Fatalf("connect %+v", res)
		}
		r := g.call(&protocol.Command{Refresh: &protocol.RefreshRequest{Token: token(t, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Hour).Unix()})}})
		if r.Refresh == nil || !r.Refresh.Expires || r.Refresh.Ttl < 3500 {
			t.Fatalf("refresh %+v", r)
		}
		// Refreshed: still connected after the first token's expiry and
		// the close delay.
		time.Sleep(3500 * time.Millisecond)
		if r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
			t.Fatalf("ping %+v", r)
		}
		// A token of another user: 3500.
		g.send(&protocol.Command{Refresh: &protocol.RefreshRequest{Token: token(t, jwt.MapClaims{"sub": "other"})}})
		g.expectClose(3500)

		// Not refreshed: 3005 after expiry plus the delay.
		g = dialNode(t, n.addr, pb)
		g.connect(token(t, jwt.MapClaims{"sub": "u", "exp": time.Now().Add(time.Second).Unix()}))
		g.c.SetDeadline(time.Now().Add(10 * time.Second))
		g.expectClose(3005)
	})
}

func TestGatewayPingPongAndStale(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.PingInterval = Duration(2 * time.Second)
	cfg.Client.PongTimeout = Duration(time.Second)
	cfg.Client.StaleCloseDelay = Duration(time.Second)
	n := startNode(t, cfg)
	formats(t, func(t *testing.T, pb bool) {
		// Never connects: 3502 stale.
		s := dialNode(t, n.addr, pb)
		// Answers pings: stays.
		good := dialNode(t, n.addr, pb)
		if res := good.connect(token(t, jwt.MapClaims{"sub": "u"})); res.Ping != 2 || !res.Pong {
			t.Fatalf("connect %+v", res)
		}
		// Ignores pings: 3012 no pong.
		bad := dialNode(t, n.addr, pb)
		bad.connect(token(t, jwt.MapClaims{"sub": "u"}))
		s.expectClose(3502)
		pings := 0
		for pings < 3 {
			r, err := good.next()
			if err != nil {
				t.Fatal(err)
			}
			if r.Id == 0 && r.Push == nil && r.Error == nil {
				pings++
				good.send(&protocol.Command{}) // pong
			}
		}
		bad.c.SetDeadline(time.Now().Add(10 * time.Second))
		bad.expectClose(3012)
	})
}

func TestGatewayLimits(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.ChannelLimit = 2
	cfg.Client.MaxBatchSize = 3
	cfg.Client.CommandRateLimit = 20
	cfg.Client.MaxCommandSize = 1024
	n := startNode(t, cfg)
	tok := token(t, jwt.MapClaims{"sub": "u"})

	g := dialNode(t, n.addr, false)
	g.connect(tok)
	g.subscribe(&protocol.SubscribeRequest{Channel: "a"})
	g.subscribe(&protocol.SubscribeRequest{Channel: "b"})
	if r := g.subscribe(&protocol.SubscribeRequest{Channel: "c"}); r.Error == nil || r.Error.Code != 106 {
		t.Fatalf("channel limit: %+v", r)
	}

	// More server-side channels in the token than the limit: 3505.
	g = dialNode(t, n.addr, true)
	g.send(&protocol.Command{Connect: &protocol.ConnectRequest{Token: token(t, jwt.MapClaims{"sub": "u", "channels": []string{"a", "b", "c"}})}})
	g.expectClose(3505)

	// More commands than the rate limit within a second: error 111.
	g = dialNode(t, n.addr, false)
	g.connect(tok)
	var limited bool
	for i := 0; i < 25 && !limited; i++ {
		r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}})
		limited = r.Error != nil && r.Error.Code == 111 && r.Error.Temporary
	}
	if !limited {
		t.Fatal("no error 111 after 25 commands")
	}

	// A batch larger than MaxBatchSize: 3501.
	g = dialNode(t, n.addr, false)
	g.connect(tok)
	var batch []*protocol.Command
	for i := 0; i < 4; i++ {
		batch = append(batch, &protocol.Command{Ping: &protocol.PingRequest{}})
	}
	g.send(batch...)
	if r, err := g.next(); err != (closedError{3501, "bad request"}) {
		t.Fatalf("batch over the limit: %+v %v; want close 3501 before any reply", r, err)
	}

	// A message larger than MaxCommandSize: 1009.
	g = dialNode(t, n.addr, false)
	g.connect(tok)
	g.writeFrame(codec.OpText, []byte(`{"id":9,"publish":{"channel":"chat:1","data":"`+strings.Repeat("x", 2000)+`"}}`))
	g.expectClose(1009)
}

func TestGatewayAPI(t *testing.T) {
	n := startNode(t, gwConfig())
	if st, _ := n.apiRaw(t, "publish", "wrong", `{"channel":"a","data":1}`); st != 401 {
		t.Fatalf("wrong key: %d", st)
	}
	if st, _ := n.apiRaw(t, "publish", "", `{"channel":"a","data":1}`); st != 401 {
		t.Fatalf("no key: %d", st)
	}
	for _, body := range []string{`{"channel":`, `[]`, `{"channel":5}`} {
		if st, _ := n.apiRaw(t, "publish", gwAPIKey, body); st != 400 {
			t.Fatalf("bad body %s: %d", body, st)
		}
	}
	if st, _ := n.apiRaw(t, "nope", gwAPIKey, `{}`); st != 404 {
		t.Fatalf("unknown method: %d", st)
	}
	errCode := func(m map[string]any) float64 {
		e, _ := m["error"].(map[string]any)
		c, _ := e["code"].(float64)
		return c
	}
	if c := errCode(n.apiCall(t, "publish", map[string]any{"channel": "nope:x", "data": 1})); c != 102 {
		t.Fatalf("unknown channel: %v", c)
	}
	if c := errCode(n.apiCall(t, "publish", map[string]any{"channel": "a"})); c != 107 {
		t.Fatalf("no data: %v", c)
	}
	if c := errCode(n.apiCall(t, "history", map[string]any{"channel": "plain:x"})); c != 108 {
		t.Fatalf("history without history: %v", c)
	}

	g := dialNode(t, n.addr, false)
	res := g.connect(token(t, jwt.MapClaims{"sub": "carol"}))
	g.subscribe(&protocol.SubscribeRequest{Channel: "idem"})

	// idempotency_key: the second publish returns the first's offset and
	// publishes nothing.
	body := map[string]any{"channel": "idem", "data": json.RawMessage(`"x"`), "idempotency_key": "k1"}
	a := n.apiCall(t, "publish", body)["result"].(map[string]any)
	b := n.apiCall(t, "publish", body)["result"].(map[string]any)
	if a["offset"] != b["offset"] || a["epoch"] != b["epoch"] {
		t.Fatalf("idempotent publish: %v %v", a, b)
	}
	n.publishAPI(t, "idem", `"y"`)
	if p := g.pub("idem"); string(p.Data) != `"x"` {
		t.Fatalf("first %s", p.Data)
	}
	if p := g.pub("idem"); string(p.Data) != `"y"` || p.Offset != 2 {
		t.Fatalf("second %s %d", p.Data, p.Offset)
	}

	// broadcast
	g.subscribe(&protocol.SubscribeRequest{Channel: "b2"})
	m := n.apiCall(t, "broadcast", map[string]any{"channels": []string{"idem", "b2", "nope:x"}, "data": 7})
	rs := m["result"].(map[string]any)["responses"].([]any)
	if len(rs) != 3 || errCode(rs[2].(map[string]any)) != 102 {
		t.Fatalf("broadcast %v", m)
	}
	g.pub("idem")
	g.pub("b2")

	// info and channels
	info := n.apiCall(t, "info", map[string]any{})["result"].(map[string]any)["nodes"].([]any)[0].(map[string]any)
	if info["num_clients"].(float64) != 1 || info["num_users"].(float64) != 1 || info["num_channels"].(float64) != 2 {
		t.Fatalf("info %v", info)
	}
	chans := n.apiCall(t, "channels", map[string]any{"pattern": "i*"})["result"].(map[string]any)["channels"].(map[string]any)
	if len(chans) != 1 || chans["idem"].(map[string]any)["num_clients"].(float64) != 1 {
		t.Fatalf("channels %v", chans)
	}

	// subscribe: a server-side subscription push, then publications.
	n.apiCall(t, "subscribe", map[string]any{"channel": "srv", "user": "carol"})
	r := g.reply()
	if r.Push == nil || r.Push.Channel != "srv" || r.Push.Subscribe == nil || !r.Push.Subscribe.Recoverable {
		t.Fatalf("subscribe push %+v", r)
	}
	n.publishAPI(t, "srv", `1`)
	g.pub("srv")

	// unsubscribe: push with code 2000.
	n.apiCall(t, "unsubscribe", map[string]any{"channel": "srv", "user": "carol"})
	r = g.reply()
	if r.Push == nil || r.Push.Unsubscribe == nil || r.Push.Unsubscribe.Code != 2000 {
		t.Fatalf("unsubscribe push %+v", r)
	}

	// subscribe with recover_since: the push subscribe, then the missed
	// publications.
	n.publishAPI(t, "srv", `2`)
	n.publishAPI(t, "srv", `3`)
	pos := n.position(t, "srv")
	n.apiCall(t, "subscribe", map[string]any{"channel": "srv", "user": "carol",
		"recover_since": map[string]any{"offset": 1, "epoch": pos.Epoch}})
	r = g.reply()
	if r.Push == nil || r.Push.Subscribe == nil || r.Push.Subscribe.Offset != 1 {
		t.Fatalf("subscribe push %+v", r)
	}
	if p := g.pub("srv"); p.Offset != 2 {
		t.Fatalf("recovered %d", p.Offset)
	}
	if p := g.pub("srv"); p.Offset != 3 {
		t.Fatalf("recovered %d", p.Offset)
	}

	// disconnect by client id, with the default code 3503.
	n.apiCall(t, "disconnect", map[string]any{"user": "carol", "client": res.Client})
	g.expectClose(3503)
	waitUntil(t, "the client gone", func() bool { return n.nconn.Load() == 0 })
}

func TestParseConfig(t *testing.T) {
	_, err := ParseConfig([]byte(`{"client":{"token":{"hmac_secret_key":"s","bogus_key":1}}}`))
	if err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("unknown key: %v", err)
	}
	c, err := ParseConfig([]byte(`{"client":{"token":{"hmac_secret_key":"s"}},"http_api":{"key":"k"},
		"channel":{"namespaces":[{"name":"ns","history_size":10,"history_ttl":"30s","force_recovery":true}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.options("ns:x"); o == nil || o.HistorySize != 10 || time.Duration(o.HistoryTTL) != 30*time.Second {
		t.Fatalf("options %+v", o)
	}
	if c.options("other:x") != nil {
		t.Fatal("unknown namespace has options")
	}
	if _, err := NewNode(Config{}, NodeOptions{}); err == nil {
		t.Fatal("a config without token keys or API key is accepted")
	}
}

// TestGatewayFrameReuse: channel names decoded from a client's frame
// point into the read buffer; a channel first created by a client publish
// must keep its name after the buffer is reused for later frames.
func TestGatewayFrameReuse(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	if r := g.call(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "chat:aaaaaaaa", Data: []byte(`1`)}}); r.Error != nil {
		t.Fatalf("publish %+v", r)
	}
	for i := 0; i < 20; i++ {
		g.call(&protocol.Command{Publish: &protocol.PublishRequest{Channel: "chat:zzzzzzzz", Data: []byte(`1`)}})
	}
	if p := n.position(t, "chat:aaaaaaaa"); p.Offset != 1 {
		t.Fatalf("chat:aaaaaaaa at offset %d, want 1", p.Offset)
	}
	if p := n.position(t, "chat:zzzzzzzz"); p.Offset != 20 {
		t.Fatalf("chat:zzzzzzzz at offset %d, want 20", p.Offset)
	}
}

// lossyBroker is a MemoryBroker whose deliveries to the node lose the
// publications with the offsets in drop, as a broker between nodes may.
type lossyBroker struct {
	*MemoryBroker
	drop map[uint64]bool
}

type lossyHandler struct {
	h    BrokerHandler
	drop map[uint64]bool
}

func (b *lossyBroker) Run(h BrokerHandler) error {
	return b.MemoryBroker.Run(lossyHandler{h, b.drop})
}

func (l lossyHandler) HandlePublication(ch string, p *Publication, sp StreamPosition) {
	if !l.drop[p.Offset] {
		l.h.HandlePublication(ch, p, sp)
	}
}

// TestGatewayGapFill: publications the broker failed to deliver are
// taken from history when the next one arrives: subscribers still see
// every offset once, in order.
func TestGatewayGapFill(t *testing.T) {
	n := startNodeWith(t, gwConfig(), NodeOptions{Broker: &lossyBroker{NewMemoryBroker(0), map[uint64]bool{2: true, 3: true, 5: true}}})
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	g.subscribe(&protocol.SubscribeRequest{Channel: "gap"})
	for i := 1; i <= 6; i++ {
		if _, err := n.Publish("gap", []byte(fmt.Sprint(i)), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 6; i++ {
		if p := g.pub("gap"); p.Offset != uint64(i) || string(p.Data) != fmt.Sprint(i) {
			t.Fatalf("publication %d: offset %d data %s", i, p.Offset, p.Data)
		}
	}
}

func TestGatewayShutdown(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	go n.Shutdown(context.Background())
	g.expectClose(3001)
}

// TestGatewayConflation: a client of a namespace with conflation_tag
// that stops reading gets the latest publication per tag value instead of
// a backlog or a disconnect.
func TestGatewayConflation(t *testing.T) {
	cfg := gwConfig()
	cfg.Channel.Namespaces = append(cfg.Channel.Namespaces, Namespace{Name: "market", ChannelOptions: ChannelOptions{
		HistorySize: 10, HistoryTTL: Duration(time.Minute), AllowSubscribeForClient: true, ConflationTag: "instrument"}})
	n := startNodeWith(t, cfg, NodeOptions{Loop: loopOptionsForSlow()})
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	g.subscribe(&protocol.SubscribeRequest{Channel: "market:eur"})
	pad := strings.Repeat("x", 1000)
	const total = 3000
	for i := 1; i <= total; i++ {
		tags := map[string]string{"instrument": fmt.Sprint(i % 5)}
		if _, err := n.Publish("market:eur", []byte(fmt.Sprintf(`{"i":%d,"p":"%s"}`, i, pad)), PublishOptions{Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "conflation", func() bool { return n.Server().Stats().Conflated > 0 })
	// Read until the last publication of each instrument has arrived: no
	// disconnect, and each instrument's publications in order. (A newer
	// value takes its instrument's place in the queue, so the very last
	// publication need not come last.)
	want := map[string]uint64{}
	for k := 0; k < 5; k++ {
		want[fmt.Sprint(k)] = uint64(total - (total-k)%5)
	}
	last := map[string]uint64{}
	for len(want) > 0 {
		p := g.pub("market:eur")
		k := p.Tags["instrument"]
		if p.Offset <= last[k] || p.Offset > total {
			t.Fatalf("instrument %s: offset %d after %d", k, p.Offset, last[k])
		}
		last[k] = p.Offset
		if p.Offset == want[k] {
			delete(want, k)
		}
	}
}

// TestGatewayAPIBatch: /api/batch runs its commands in order and answers
// one reply per command.
func TestGatewayAPIBatch(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, true)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	g.subscribe(&protocol.SubscribeRequest{Channel: "batch"})
	st, out := n.apiRaw(t, "batch", gwAPIKey, `{"commands":[
		{"publish":{"channel":"batch","data":1}},
		{"publish":{"channel":"batch","data":2}},
		{"presence":{"channel":"batch"}},
		{"publish":{"channel":"nope:x","data":3}},
		{"history":{"channel":"batch","limit":-1}}]}`)
	if st != 200 {
		t.Fatalf("status %d %s", st, out)
	}
	var res struct {
		Replies []map[string]json.RawMessage `json:"replies"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Replies) != 5 {
		t.Fatalf("%s: %v", out, err)
	}
	want := []string{`{"offset":1,"epoch":`, `{"offset":2,"epoch":`, `{"code":104,`, `{"code":102,`, `{"publications":[{"data":1,"offset":1},{"data":2,"offset":2}]`}
	for i, r := range res.Replies {
		var got string
		for _, v := range r {
			got = string(v)
		}
		if !strings.HasPrefix(got, want[i]) {
			t.Fatalf("reply %d: %s, want %s…", i, got, want[i])
		}
	}
	if p := g.pub("batch"); p.Offset != 1 {
		t.Fatalf("offset %d", p.Offset)
	}
	if p := g.pub("batch"); p.Offset != 2 {
		t.Fatalf("offset %d", p.Offset)
	}
}
