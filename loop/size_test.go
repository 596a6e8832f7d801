//go:build !windows

package loop

import (
	"testing"
	"unsafe"
)

// Every idle connection pays for a Conn: keep it in the 160-byte size
// class (see reader for what was moved out to get there). It holds the
// first topic inline: a connection with one subscription pays 160 B
// where a 144-byte Conn with a connExt and a topicRef paid 192 B.
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if n := unsafe.Sizeof(Conn{}); n > 160 {
		t.Errorf("Conn is %d bytes; want at most 160", n)
	}
}

// A connection with subscriptions beyond the first holds a connExt and a
// topicRef for each of the others beside its Conn.
func TestSubscriptionSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if n := unsafe.Sizeof(connExt{}); n > 32 {
		t.Errorf("connExt is %d bytes; want at most 32", n)
	}
	if n := unsafe.Sizeof(topicRef{}); n > 16 {
		t.Errorf("topicRef is %d bytes; want at most 16", n)
	}
}
