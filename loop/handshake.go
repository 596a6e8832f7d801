//go:build !windows

package loop

// The opening handshake: the upgrade request is parsed by package upgrade
// as it arrives; accept runs the origin check, the connection limit and
// Authorize, negotiates extensions and the subprotocol, and answers 101.

import (
	"bytes"
	"slices"

	"github.com/wsgate/wsgate/upgrade"
)

// reject answers a failed upgrade with its HTTP status. gnet flushes the
// response when it closes the connection.
func (c *Conn) reject(err error) {
	re, ok := upgrade.AsReject(err)
	if !ok {
		re = upgrade.RejectError{Status: 500, Reason: "internal error"}
	}
	b := ctrlPool.Get()
	b.B = upgrade.AppendReject(b.B, re)
	_, _ = c.gc.Write(b.B)
	c.ls.stats.bytesOut.Add(int64(len(b.B)))
	c.ls.stats.reject(re.Status)
	ctrlPool.Put(b)
	c.ls.srv.opts.Logger.Debug("wsgate: upgrade rejected", "remote", c.RemoteAddr(), "status", re.Status, "reason", re.Reason)
	c.releaseReq()
}

func (c *Conn) releaseReq() {
	if c.rd != nil && c.rd.req != nil {
		c.rd.req.Reset(nil) // drop its reference to the input buffer
		reqPool.Put(c.rd.req)
		c.rd.req = nil
	}
}

// accept runs the upgrade hooks on a complete, valid request, writes the
// 101 response and opens the connection. It reports false if the upgrade
// was rejected.
func (c *Conn) accept() bool {
	s := c.ls.srv
	r := c.rd.req
	if !s.originAllowed(r) {
		c.reject(upgrade.ErrOrigin)
		return false
	}
	// Reserve the connection's place first: loops upgrade in parallel, and
	// a check followed by a later increment would let them all pass.
	// Counted before the 101 goes out, so that a client holding its 101
	// always finds itself in Conns().
	if n := s.conns.Add(1); s.opts.MaxConns > 0 && int(n) > s.opts.MaxConns || s.shutdown.Load() {
		s.conns.Add(-1)
		c.reject(upgrade.ErrTooManyConns)
		return false
	}
	if s.opts.Authorize != nil {
		v, err := s.opts.Authorize(r)
		if err != nil {
			if _, ok := upgrade.AsReject(err); !ok {
				// Its text is for the server's log, not for the client.
				s.opts.Logger.Debug("loop: Authorize refused an upgrade", "remote", c.RemoteAddr(), "err", err)
				err = upgrade.ErrForbidden
			}
			s.conns.Add(-1)
			c.reject(err)
			return false
		}
		c.value = v
	}
	var resp upgrade.Response
	scratch := ctrlPool.Get()
	ext := ctrlPool.Get()
	ext.B = c.negotiate(ext.B[:0], scratch.B)
	ctrlPool.Put(scratch)
	resp.Extensions = ext.B
	if p := r.Protocol(s.opts.Protocols); p != "" {
		resp.Protocol = p
		c.proto = uint8(slices.Index(s.opts.Protocols, p) + 1)
	}
	b := ctrlPool.Get()
	b.B = upgrade.AppendResponse(b.B, r.Key(), &resp)
	ctrlPool.Put(ext)
	c.releaseReq()
	// Out of the handshake before the 101 goes out too: a client holding
	// its 101 may open the next connection at once, and must find this
	// one's handshake place free.
	s.adm.upgraded()
	_, _ = c.gc.Write(b.B)
	c.ls.stats.bytesOut.Add(int64(len(b.B)))
	ctrlPool.Put(b)
	if c.state == stateClosed { // the write failed and gnet closed it
		s.conns.Add(-1)
		// OnClose, inside Write, gave the handshake place back again.
		s.adm.handshakes.Add(1)
		return false
	}
	c.state = stateOpen
	c.mark = 0 // no ping sent yet (it held the handshake deadline)
	c.rflags |= rUpgraded
	c.ls.reschedule(c)
	s.handler.OnOpen(c)
	return true
}

// originAllowed applies the origin policy: no Origin header (not a
// browser) passes; otherwise the origin's host must be the request's Host
// or the origin must be listed in AllowedOrigins.
func (s *Server) originAllowed(r *upgrade.Request) bool {
	origin := r.Origin()
	if origin == nil {
		return true
	}
	for _, o := range s.opts.AllowedOrigins {
		if o == "*" || bytes.EqualFold([]byte(o), origin) {
			return true
		}
	}
	host := origin
	if i := bytes.Index(host, []byte("://")); i >= 0 {
		host = host[i+3:]
	}
	return bytes.EqualFold(host, r.Host())
}
