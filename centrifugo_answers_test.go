package wsgate

import (
	"strings"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"
)

// TestGatewayCentrifugoAnswers: answers observed from Centrifugo on the
// wire. A publish without data and a channel name over 255 bytes get
// error 107 and the connection stays open; history of a channel without
// history gets 108 (before any permission check); an API call with an
// empty body gets HTTP 400.
func TestGatewayCentrifugoAnswers(t *testing.T) {
	n := startNode(t, gwConfig())
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	long := "chat:" + strings.Repeat("x", 251)
	for name, cmd := range map[string]*protocol.Command{
		"publish without data":  {Publish: &protocol.PublishRequest{Channel: "chat:a"}},
		"subscribe long name":   {Subscribe: &protocol.SubscribeRequest{Channel: long}},
		"publish long name":     {Publish: &protocol.PublishRequest{Channel: long, Data: []byte(`1`)}},
		"history of no history": {History: &protocol.HistoryRequest{Channel: "plain:a"}},
	} {
		want := uint32(107)
		if cmd.History != nil {
			want = 108
		}
		if r := g.call(cmd); r.Error == nil || r.Error.Code != want {
			t.Fatalf("%s: %+v; want error %d", name, r, want)
		}
	}
	if r := g.call(&protocol.Command{Ping: &protocol.PingRequest{}}); r.Ping == nil {
		t.Fatalf("connection after the errors: %+v", r)
	}
	if st, out := n.apiRaw(t, "info", gwAPIKey, ""); st != 400 {
		t.Fatalf("empty API body: %d %s", st, out)
	}
}
