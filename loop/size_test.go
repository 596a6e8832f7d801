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
