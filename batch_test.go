package wsgate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/codec"
)

// TestGatewayResubscribeManyAndDuplicateIDs: with the default limits, an
// SDK resubscribing 300 channels at once after a reconnect (three
// messages of 100) gets every subscription, no error 111; two commands
// with the same id in one message both run and the connection stays
// open, as in Centrifugo.
func TestGatewayResubscribeManyAndDuplicateIDs(t *testing.T) {
	cfg := gwConfig()
	cfg.Client.ChannelLimit = 1000
	n := startNode(t, cfg)
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	for b := range 3 {
		var cmds []string
		for i := range 100 {
			k := b*100 + i
			cmds = append(cmds, fmt.Sprintf(`{"id":%d,"subscribe":{"channel":"plain:%d"}}`, 10+k, k))
		}
		g.writeFrame(codec.OpText, []byte(strings.Join(cmds, "\n")))
	}
	for k := range 300 {
		r := g.reply()
		if r.Error != nil || r.Subscribe == nil {
			t.Fatalf("subscription %d: %+v", k, r)
		}
	}
	g.writeFrame(codec.OpText, []byte(`{"id":7,"ping":{}}`+"\n"+`{"id":7,"ping":{}}`))
	for range 2 {
		if r := g.reply(); r.Id != 7 || r.Ping == nil {
			t.Fatalf("duplicate ids: %+v", r)
		}
	}
	if r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
		t.Fatalf("after duplicate ids: %+v", r)
	}
}
