//go:build !windows

package loop

import (
	"sync"
	"sync/atomic"

	"github.com/wsgate/wsgate/codec"
)

// Stats are the server's counters, summed over its event loops.
type Stats struct {
	Delivered     int64 // messages queued to a connection by Publish or Broadcast
	Dropped       int64 // messages dropped by SlowDropNewest, SlowDropOldest or SlowConflate
	Conflated     int64 // queued messages replaced by a newer one with the same key
	SlowClosed    int64 // connections closed as slow consumers
	Subscriptions int64 // current subscriptions

	MessagesIn  int64 // messages delivered to Handler.OnMessage
	BytesIn     int64 // bytes read from connections (handshakes included)
	MessagesOut int64 // data messages handed to gnet
	BytesOut    int64 // bytes handed to gnet (frames and handshake responses)

	// Rejected counts refused upgrades by HTTP status (408 for handshake
	// timeouts, 503 beyond MaxConns, ...).
	Rejected map[int]int64
	// ClosesSent and ClosesReceived count close frames by code: the ones
	// we sent (first, or in answer) and the valid ones peers sent. A code
	// of 3000–4999 that a peer chose (sent, or echoed in our answer) is
	// counted under PeerCode.
	ClosesSent     map[codec.StatusCode]int64
	ClosesReceived map[codec.StatusCode]int64

	TCPConns   int64 // TCP connections held, in their handshake or upgraded
	Handshakes int64 // TCP connections in their handshake
	Refused    int64 // TCP connections refused at accept (MaxTCPConns, MaxHandshakes)
	// MessageBudgetUsed is the part of Options.MessageBudget reserved by
	// messages being assembled.
	MessageBudgetUsed int64
	// SendBudgetUsed is the part of Options.SendBudget held by
	// connections that are behind.
	SendBudgetUsed int64
}

// loopStats are one event loop's counters. Only that loop writes them, so
// no cache line is shared between loops on the delivery path; Stats sums
// them. The rare events (rejections, closes) are counted in maps under mu.
type loopStats struct {
	delivered, dropped, conflated, slowClosed, subs atomic.Int64
	msgsIn, bytesIn, msgsOut, bytesOut              atomic.Int64

	mu        sync.Mutex
	rejected  map[int]int64
	closeSent map[codec.StatusCode]int64
	closeRecv map[codec.StatusCode]int64
}

func (st *loopStats) reject(status int) {
	st.mu.Lock()
	if st.rejected == nil {
		st.rejected = make(map[int]int64)
	}
	st.rejected[status]++
	st.mu.Unlock()
}

// PeerCode is the key under which Stats counts close codes of 3000–4999
// that peers chose: any peer may send any of them, and a key (a metric
// series) each would let peers add 2,000 of them.
const PeerCode codec.StatusCode = 0

// peerCode returns the key of code, chosen by the peer, in Stats.
func peerCode(code codec.StatusCode) codec.StatusCode {
	if code >= 3000 {
		return PeerCode
	}
	return code
}

func (st *loopStats) closed(code codec.StatusCode, sent bool) {
	st.mu.Lock()
	m := &st.closeRecv
	if sent {
		m = &st.closeSent
	}
	if *m == nil {
		*m = make(map[codec.StatusCode]int64)
	}
	(*m)[code]++
	st.mu.Unlock()
}

// Stats returns the counters. Safe from any goroutine.
func (s *Server) Stats() Stats {
	st := Stats{
		Rejected:       map[int]int64{},
		ClosesSent:     map[codec.StatusCode]int64{},
		ClosesReceived: map[codec.StatusCode]int64{},
		TCPConns:       s.adm.tcp.Load(),
		Handshakes:     s.adm.handshakes.Load(),
		Refused:        s.adm.refused.Load(),

		MessageBudgetUsed: s.msgUsed.Load(),
		SendBudgetUsed:    s.sendUsed.Load(),
	}
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	for _, ls := range loops {
		l := &ls.stats
		st.Delivered += l.delivered.Load()
		st.Dropped += l.dropped.Load()
		st.Conflated += l.conflated.Load()
		st.SlowClosed += l.slowClosed.Load()
		st.Subscriptions += l.subs.Load()
		st.MessagesIn += l.msgsIn.Load()
		st.BytesIn += l.bytesIn.Load()
		st.MessagesOut += l.msgsOut.Load()
		st.BytesOut += l.bytesOut.Load()
		l.mu.Lock()
		for k, v := range l.rejected {
			st.Rejected[k] += v
		}
		for k, v := range l.closeSent {
			st.ClosesSent[k] += v
		}
		for k, v := range l.closeRecv {
			st.ClosesReceived[k] += v
		}
		l.mu.Unlock()
	}
	return st
}
