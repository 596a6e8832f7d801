package wsgate

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/codec"
)

// TestStatsCountWhatClientsSaw runs clients over real sockets (JSON and
// Protobuf), publishes through the API and from a client, closes
// connections three ways, and checks Node.Stats against what the clients
// counted.
func TestStatsCountWhatClientsSaw(t *testing.T) {
	n := startNode(t, gwConfig())
	const clients, apiPubs, clientPubs = 4, 20, 3
	const channel = "chat:stats"
	var cs []*gwClient
	for i := range clients {
		g := dialNode(t, n.addr, i%2 == 1)
		g.connect(token(t, jwt.MapClaims{"sub": fmt.Sprint("u", i)}))
		if r := g.subscribe(&protocol.SubscribeRequest{Channel: channel}); r.Error != nil {
			t.Fatalf("subscribe: %+v", r.Error)
		}
		cs = append(cs, g)
	}
	var dataBytes int64
	for i := range apiPubs {
		d := fmt.Sprintf(`{"i":%d}`, i)
		dataBytes += int64(len(d))
		n.publishAPI(t, channel, d)
	}
	for i := range clientPubs {
		d := fmt.Sprintf(`{"c":%d}`, i)
		dataBytes += int64(len(d))
		r := cs[0].call(&protocol.Command{Publish: &protocol.PublishRequest{Channel: channel, Data: []byte(d)}})
		if r.Error != nil {
			t.Fatalf("client publish: %+v", r.Error)
		}
	}
	received := 0
	for _, g := range cs {
		for range apiPubs + clientPubs {
			g.pub(channel)
			received++
		}
	}

	st := n.Stats()
	check := func(what string, got, want int64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", what, got, want)
		}
	}
	check("Connects", st.Connects, clients)
	check("Clients", st.Clients, clients)
	check("Conns", st.Conns, clients)
	check("Channels", st.Channels, 1)
	check("Server.Subscriptions", st.Server.Subscriptions, clients)
	check("Server.Delivered", st.Server.Delivered, int64(received))
	check("Publications[api]", st.Publications[SourceAPI], apiPubs)
	check("Publications[client]", st.Publications[SourceClient], clientPubs)
	check("Publications[broker]", st.Publications[SourceBroker], apiPubs+clientPubs)
	check("Commands[connect]", int64(st.Commands["connect"].Count), clients)
	check("Commands[subscribe]", int64(st.Commands["subscribe"].Count), clients)
	check("Commands[publish]", int64(st.Commands["publish"].Count), clientPubs)
	check("API[publish]", int64(st.API["publish"].Count), apiPubs)
	check("BrokerPublish", int64(st.BrokerPublish.Count), apiPubs+clientPubs)
	check("HistoryPublications", st.HistoryPublications, apiPubs+clientPubs)
	check("HistoryBytes", st.HistoryBytes, dataBytes)
	// Every message a client sent is a command message here.
	check("Server.MessagesIn", st.Server.MessagesIn, 2*clients+clientPubs)
	for name, h := range map[string]Histogram{"connect": st.Commands["connect"], "api publish": st.API["publish"], "broker": st.BrokerPublish} {
		for i := 1; i < len(h.Buckets); i++ {
			if h.Buckets[i] < h.Buckets[i-1] {
				t.Errorf("%s: buckets not cumulative: %v", name, h.Buckets)
			}
		}
		if last := h.Buckets[len(h.Buckets)-1]; last > h.Count || h.Sum <= 0 {
			t.Errorf("%s: last bucket %d, count %d, sum %v", name, last, h.Count, h.Sum)
		}
	}

	// Three ways to end: a server API disconnect with code 4000, the
	// client's close frame 1000, and a TCP close without closing
	// handshake (1006).
	n.apiCall(t, "disconnect", map[string]any{"user": "u0", "disconnect": map[string]any{"code": 4000, "reason": "bye"}})
	cs[0].expectClose(4000)
	cs[1].writeFrame(codec.OpClose, binary.BigEndian.AppendUint16(nil, 1000))
	cs[1].expectClose(1000)
	cs[2].c.Close()
	waitUntil(t, "three closed connections", func() bool { return n.Stats().Conns == 1 })
	st = n.Stats()
	want := map[uint16]int64{4000: 1, 1000: 1, 1006: 1}
	if fmt.Sprint(st.Disconnects) != fmt.Sprint(want) {
		t.Errorf("Disconnects = %v, want %v", st.Disconnects, want)
	}
	check("Clients after closes", st.Clients, 1)
	check("Server.Subscriptions after closes", st.Server.Subscriptions, 1)
}
