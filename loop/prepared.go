//go:build !windows

package loop

// Prepared messages: framed once, compressed once per window size, shared
// by every connection they are published to.

import (
	"github.com/wsgate/wsgate/codec"
	"github.com/wsgate/wsgate/deflate"
	"sync"
)

// PreparedMessage is a message framed once for many connections. It is
// immutable and safe for concurrent use.
type PreparedMessage struct {
	op      codec.OpCode
	key     string
	payload []byte
	plain   []byte // uncompressed frames

	mu sync.Mutex
	z  [16][]byte // compressed frames per server_max_window_bits (0: 15), made on first need
	zn [16]bool   // z[i] was computed (nil: compression does not pay)
}

// Prepare frames payload as a message of type op (OpText or OpBinary) for
// Publish. key, if not empty, is the conflation key (SlowConflate).
// payload is copied. Safe from any goroutine.
func (s *Server) Prepare(op codec.OpCode, payload []byte, key string) (*PreparedMessage, error) {
	if op != codec.OpText && op != codec.OpBinary {
		return nil, ErrNotData
	}
	p := append([]byte(nil), payload...)
	return &PreparedMessage{
		op: op, key: key, payload: p,
		plain: appendMessage(nil, op, 0, p, s.opts.FragmentSize),
	}, nil
}

// compressed returns the message compressed without history for a
// server window of bits (0: 15), framed with RSV1, or nil when
// compression does not pay. The first caller per window size compresses,
// with the server's shared Compressor.
func (pm *PreparedMessage) compressed(s *Server, bits uint8) []byte {
	i := bits & 15
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if !pm.zn[i] {
		pm.zn[i] = true
		s.zmu.Lock()
		if s.zcomp == nil {
			s.zcomp, _ = deflate.NewCompressor(s.opts.Deflate)
		}
		z, ok := s.zcomp.AppendCompress(nil, pm.payload, deflate.Params{ServerMaxWindowBits: bits}, nil)
		s.zmu.Unlock()
		if ok {
			pm.z[i] = appendMessage(nil, pm.op, codec.Rsv1, z, s.opts.FragmentSize)
		}
	}
	return pm.z[i]
}

// Broadcast sends a message to every open connection: Prepare and
// publish to all. Safe from any goroutine, handlers included; it returns
// without waiting. payload is not retained.
func (s *Server) Broadcast(op codec.OpCode, payload []byte) error {
	pm, err := s.Prepare(op, payload, "")
	if err != nil {
		return err
	}
	return s.publish("", pm)
}

// BroadcastPrepared sends pm to every open connection.
func (s *Server) BroadcastPrepared(pm *PreparedMessage) error { return s.publish("", pm) }
