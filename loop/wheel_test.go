//go:build !windows

package loop

import "testing"

func TestWheel(t *testing.T) {
	var w wheel
	w.now = 5
	conns := make([]*Conn, 6)
	dues := []uint32{6, 7, 7, 5 + wheelSlots, 6 + wheelSlots + 1, 3} // 3 is in the past: due next tick
	for i := range conns {
		conns[i] = &Conn{}
		w.add(conns[i], dues[i])
	}
	if w.n != len(conns) {
		t.Fatalf("n = %d; want %d", w.n, len(conns))
	}
	w.remove(conns[2])
	w.remove(conns[2]) // removing twice is a no-op
	if w.n != len(conns)-1 {
		t.Fatalf("n after remove = %d; want %d", w.n, len(conns)-1)
	}

	fired := map[*Conn]uint32{}
	fire := func(c *Conn) { fired[c] = w.now }
	w.advance(7, fire)
	for _, i := range []int{0, 5} {
		if fired[conns[i]] != 6 {
			t.Errorf("conn %d fired at %d; want 6", i, fired[conns[i]])
		}
	}
	if fired[conns[1]] != 7 {
		t.Errorf("conn 1 fired at %d; want 7", fired[conns[1]])
	}
	if _, ok := fired[conns[2]]; ok {
		t.Error("removed conn fired")
	}
	if _, ok := fired[conns[3]]; ok {
		t.Error("conn due a lap later fired early")
	}
	w.advance(5+wheelSlots+2, fire)
	if fired[conns[3]] != 5+wheelSlots || fired[conns[4]] != 7+wheelSlots {
		t.Errorf("later-lap conns fired at %d and %d; want %d and %d",
			fired[conns[3]], fired[conns[4]], 5+wheelSlots, 7+wheelSlots)
	}
	if w.n != 0 {
		t.Errorf("n = %d after all fired; want 0", w.n)
	}
	seen := 0
	w.each(func(*Conn) { seen++ })
	if seen != 0 {
		t.Errorf("each saw %d conns in an empty wheel", seen)
	}
}
