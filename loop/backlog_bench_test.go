//go:build !windows

package loop

import (
	"strconv"
	"testing"
)

// BenchmarkBacklogPoll is the cost of the loop re-adding n connections
// to its backlog in one poll (Run does it every backlogTick for every
// connection with data queued or in gnet): ns/op is per poll.
func BenchmarkBacklogPoll(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			conns := make([]*Conn, n)
			for i := range conns {
				conns[i] = new(Conn)
			}
			ls := new(loopState)
			for range b.N {
				work := ls.backlog
				ls.backlog = nil
				for _, c := range work { // as Run does
					c.mu.Lock()
					c.wflags &^= wBacklog
					c.mu.Unlock()
				}
				for _, c := range conns {
					ls.addBacklog(c)
				}
			}
		})
	}
}
