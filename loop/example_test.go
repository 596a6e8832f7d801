//go:build !windows

package loop_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/loop"
	"github.com/wsgate/wsgate/upgrade"
)

// echo sends every message back with the same opcode.
type echo struct{ loop.BuiltinHandler }

func (echo) OnMessage(c *loop.Conn, op codec.OpCode, p []byte) {
	_ = c.WriteMessage(op, p) // copies p, which is only valid until OnMessage returns
}

// The shortest way: the zero Options, serving until the process ends.
func ExampleNewServer() {
	srv, err := loop.NewServer(echo{}, loop.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(":8080"); err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Wait())
}

// A server with options, an authorization hook and a graceful shutdown.
func ExampleServer_Shutdown() {
	srv, err := loop.NewServer(echo{}, loop.Options{
		NumLoops:       2,
		MaxMessageSize: 64 << 10,
		Protocols:      []string{"chat.v1"},
		Authorize: func(r *upgrade.Request) (any, error) {
			token := r.Query() // valid only during the call: copy what you keep
			if len(token) == 0 {
				return nil, upgrade.RejectError{Status: 401, Reason: "missing token"}
			}
			return string(token), nil // attached to the Conn as Value()
		},
	})
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
type closer struct{ loop.BuiltinHandler }

func (closer) OnClose(c *loop.Conn, err error) {
	var ce *loop.CloseError
	if errors.As(err, &ce) {
		log.Printf("%v closed: code %d reason %q by peer %v", c.RemoteAddr(), ce.Code, ce.Reason, ce.Remote)
	}
}

// Reporting why connections closed.
func ExampleCloseError() {
	srv, err := loop.NewServer(closer{}, loop.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(":8080"); err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Wait())
}
