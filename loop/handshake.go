//go:build !windows

package loop

// The opening handshake: the upgrade request is parsed by package upgrade
// as it arrives; accept runs the origin check, the connection limit and
// Authorize, negotiates extensions and the subprotocol, and answers 101.

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strconv"

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
	host, proto := r.Host(), []byte(nil)
	if len(s.opts.TrustedProxies) > 0 && c.raddr != nil && s.trusted(c.raddr.AddrPort().Addr()) {
		if hop, ok := r.Forwarded(s.trustedNode); ok {
			if ap, ok := parseNode(hop.For); ok {
				s.opts.Logger.Debug("loop: client address from a trusted proxy", "remote", ap, "proxy", c.raddr)
				c.raddr = net.TCPAddrFromAddrPort(ap)
			}
			if hop.Host != nil {
				host = hop.Host
			}
			proto = hop.Proto
		}
	}
	if !s.originAllowed(r.Origin(), host, proto) {
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
// browser) passes; otherwise the origin's host must be host (the request's
// Host, or the one a trusted proxy forwarded), with the scheme proto if a
// trusted proxy forwarded one, or the origin must be listed in
// AllowedOrigins.
func (s *Server) originAllowed(origin, host, proto []byte) bool {
	if origin == nil {
		return true
	}
	for _, o := range s.opts.AllowedOrigins {
		if o == "*" || bytes.EqualFold([]byte(o), origin) {
			return true
		}
	}
	oh, scheme := origin, []byte(nil)
	if i := bytes.Index(origin, []byte("://")); i >= 0 {
		scheme, oh = origin[:i], origin[i+3:]
	}
	if proto != nil && !sameScheme(scheme, proto) {
		return false
	}
	return bytes.EqualFold(oh, host)
}

// sameScheme reports whether an origin's scheme matches a forwarded proto,
// where "ws" stands for "http" and "wss" for "https".
func sameScheme(scheme, proto []byte) bool {
	norm := func(b []byte) string {
		switch {
		case bytes.EqualFold(b, []byte("https")), bytes.EqualFold(b, []byte("wss")):
			return "https"
		case bytes.EqualFold(b, []byte("http")), bytes.EqualFold(b, []byte("ws")):
			return "http"
		}
		return string(b)
	}
	return norm(scheme) == norm(proto)
}

// trusted reports whether a is in TrustedProxies.
func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// trustedNode reports whether a forwarded node is a trusted proxy's
// address.
func (s *Server) trustedNode(node []byte) bool {
	ap, ok := parseNode(node)
	return ok && s.trusted(ap.Addr())
}

// parseNode parses a forwarded node: an IPv4 address, an IPv6 address
// (bare, as X-Forwarded-For writes it, or in brackets, as RFC 7239 §6
// requires), with an optional port after a bracket or an IPv4 address.
// "unknown" and obfuscated identifiers are not addresses.
func parseNode(node []byte) (netip.AddrPort, bool) {
	addr, port := node, []byte(nil)
	if len(node) > 0 && node[0] == '[' {
		end := bytes.IndexByte(node, ']')
		if end < 0 {
			return netip.AddrPort{}, false
		}
		addr, port = node[1:end], node[end+1:]
		if len(port) > 0 && port[0] != ':' {
			return netip.AddrPort{}, false
		}
	} else if i := bytes.IndexByte(node, ':'); i >= 0 && bytes.IndexByte(node[i+1:], ':') < 0 {
		addr, port = node[:i], node[i:] // IPv4:port
	}
	a, err := netip.ParseAddr(string(addr))
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, false
	}
	var p uint64
	if len(port) > 0 {
		if p, err = strconv.ParseUint(string(port[1:]), 10, 16); err != nil {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), true
}
