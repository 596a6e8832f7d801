package wsgate

import (
	"errors"
	"fmt"
	"testing"

	"github.com/centrifugal/protocol"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wsgate/wsgate/codec"
)

// TestReviewCmdqBadTailDropsQueuedReplies: a frame whose valid commands
// are followed by one that does not decode gets, as before the change
// and as in Centrifugo, the replies of the valid commands and then the
// close 3501. When one of them waits for the broker, the close goes out
// at once, on the loop: the publish is still made (by the worker, before
// OnClose) but its reply is lost.
func TestReviewCmdqBadTailDropsQueuedReplies(t *testing.T) {
	for _, pb := range []bool{false, true} {
		t.Run(fmt.Sprint("protobuf=", pb), func(t *testing.T) { reviewBadTail(t, pb) })
	}
}

func reviewBadTail(t *testing.T, pb bool) {
	n, b := startGatedNode(t, slowConfig(), NodeOptions{})
	g := dialNode(t, n.addr, pb)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	b.shut()
	cmds := []*protocol.Command{
		{Id: 2, Ping: &protocol.PingRequest{}},
		{Id: 3, Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{"n":1}`)}},
	}
	msg := g.encode(cmds...)
	op := codec.OpText
	if pb {
		op = codec.OpBinary
		msg = append(msg, 0x05, 0x01) // a length of 5 with 1 byte left
	} else {
		msg = append(msg, []byte("\n{\"id\":4,")...)
	}
	g.writeFrame(op, msg)
	waitUntil(t, "the publish waiting", func() bool { return b.nwaiting() == 1 })
	b.release()
	var ids []uint32
	for {
		r, err := g.next()
		var ce closedError
		if errors.As(err, &ce) {
			if ce.code != uint16(disconnectBadRequest.Code) {
				t.Fatalf("closed with %d", ce.code)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != 0 {
			ids = append(ids, r.Id)
		}
	}
	if fmt.Sprint(ids) != "[2 3]" {
		t.Fatalf("replies before the close: %v, want [2 3] (the publish was made: %d in history)", ids, n.historyLen(t, "slow:p"))
	}
}

// TestReviewCmdqBadTailMemoryControl: the same frame with a MemoryBroker
// (commands run on the loop) gets both replies before the close.
func TestReviewCmdqBadTailMemoryControl(t *testing.T) {
	n := startNode(t, slowConfig())
	g := dialNode(t, n.addr, false)
	g.connect(token(t, jwt.MapClaims{"sub": "u"}))
	msg := g.encode(&protocol.Command{Id: 2, Ping: &protocol.PingRequest{}},
		&protocol.Command{Id: 3, Publish: &protocol.PublishRequest{Channel: "slow:p", Data: []byte(`{"n":1}`)}})
	g.writeFrame(codec.OpText, append(msg, []byte("\n{\"id\":4,")...))
	var ids []uint32
	for {
		r, err := g.next()
		if err != nil {
			break
		}
		if r.Id != 0 {
			ids = append(ids, r.Id)
		}
	}
	if fmt.Sprint(ids) != "[2 3]" {
		t.Fatalf("replies before the close: %v, want [2 3]", ids)
	}
}
