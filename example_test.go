package wsgate_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/wsgate/wsgate"
)

// echo sends every message back with the same opcode.
type echo struct{ wsgate.BuiltinHandler }

func (echo) OnMessage(c *wsgate.Conn, op wsgate.OpCode, p []byte) {
	_ = c.WriteMessage(op, p) // copies p, which is only valid until OnMessage returns
}

// The shortest way: serve until the process ends.
func ExampleServe() {
	log.Fatal(wsgate.Serve(":8080", echo{}))
}

// A server with options, an authorization hook and a graceful shutdown.
func ExampleNewServer() {
	srv, err := wsgate.NewServer(echo{},
		wsgate.WithLoops(2),
		wsgate.WithMaxMessageSize(64<<10),
		wsgate.WithProtocols("chat.v1"),
		wsgate.WithAuthorize(func(r *wsgate.Request) (any, error) {
			token := r.Query() // valid only during the call: copy what you keep
			if len(token) == 0 {
				return nil, wsgate.RejectError{Status: 401, Reason: "missing token"}
			}
			return string(token), nil // attached to the Conn as Value()
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:8080"); err != nil {
		log.Fatal(err)
	}
	// ... later:
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Print(err)
	}
}

// closer logs how each connection ended.
type closer struct{ wsgate.BuiltinHandler }

func (closer) OnClose(c *wsgate.Conn, err error) {
	var ce *wsgate.CloseError
	if errors.As(err, &ce) {
		log.Printf("%v closed: code %d reason %q by peer %v", c.RemoteAddr(), ce.Code, ce.Reason, ce.Remote)
	}
}

// Reporting why connections closed.
func ExampleCloseError() {
	log.Fatal(wsgate.Serve(":8080", closer{}))
}
