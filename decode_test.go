package wsgate

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/centrifugal/protocol"
)

// TestDecodeCopies: the commands decoded from a message hold nothing of
// it (a queued command outlives the engine's read buffer): after the
// message is overwritten, each encodes as before, in both formats.
func TestDecodeCopies(t *testing.T) {
	cmds := []*protocol.Command{
		{Id: 1, Connect: &protocol.ConnectRequest{Token: "tok.en", Name: "n", Version: "v",
			Subs: map[string]*protocol.SubscribeRequest{"chat:a": {Recover: true, Epoch: "ep", Offset: 7}}}},
		{Id: 2, Subscribe: &protocol.SubscribeRequest{Channel: "chat:é\\u", Token: "t", Epoch: "e", Data: []byte(`{"a":1}`)}},
		{Id: 3, Publish: &protocol.PublishRequest{Channel: "chat:b", Data: []byte(`{"text":"héllo \"q\""}`)}},
		{Id: 4, History: &protocol.HistoryRequest{Channel: "chat:c", Since: &protocol.StreamPosition{Offset: 3, Epoch: "x"}}},
		{Id: 5, Unsubscribe: &protocol.UnsubscribeRequest{Channel: "chat:d"}},
		{Id: 6, Rpc: &protocol.RPCRequest{Method: "m", Data: []byte(`[1,2]`)}},
		{Id: 7, SubRefresh: &protocol.SubRefreshRequest{Channel: "chat:e", Token: "st"}},
	}
	n := &Node{}
	n.cfg.Client.MaxBatchSize = len(cmds)
	for _, pb := range []bool{false, true} {
		t.Run(fmt.Sprint("protobuf=", pb), func(t *testing.T) {
			g := &gwClient{t: t, pb: pb}
			msg := g.encode(cmds...)
			format := protoJSON
			if pb {
				format = protoProtobuf
			}
			got, last, err := n.decode(format, msg)
			if len(got) != len(cmds) || !last || !isEOF(err) {
				t.Fatalf("decoded %d commands, last %v, err %v", len(got), last, err)
			}
			want := g.encode(got...)
			if !bytes.Equal(want, msg) {
				t.Fatalf("decoded commands encode as\n%s\nnot\n%s", want, msg)
			}
			for i := range msg {
				msg[i] = 'X'
			}
			if after := g.encode(got...); !bytes.Equal(after, want) {
				t.Fatalf("after the message was overwritten the commands encode as\n%s\nnot\n%s", after, want)
			}
		})
	}
}
