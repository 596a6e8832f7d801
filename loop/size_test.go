//go:build !windows

package loop

import (
	"testing"
	"unsafe"
)

// Every idle connection pays for a Conn: keep it in the 144-byte size
// class (see reader for what was moved out to get there).
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if n := unsafe.Sizeof(Conn{}); n > 144 {
		t.Errorf("Conn is %d bytes; want at most 144", n)
	}
}

// A connection with subscriptions only holds a connExt and one topicRef
// per topic beside its Conn.
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
