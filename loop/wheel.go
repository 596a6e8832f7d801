//go:build !windows

package loop

import "time"

// tick is the timing wheel's resolution.
const tick = 100 * time.Millisecond

// wheelSlots is the number of slots: 1024 ticks ≈ 102 s per lap. A deadline
// further away simply stays in its slot for more than one lap.
const wheelSlots = 1024

// wheel is a hashed timing wheel owned by one event loop; only that loop
// touches it, so it needs no lock. Every connection of the loop is linked
// into exactly one slot from OnOpen to OnClose (the wheel is also the loop's
// list of connections). Deadlines are lazy: activity only updates fields of
// the connection, and when a slot fires the connection computes its real
// next deadline and is re-linked if that lies in the future. So the wheel is
// touched once per deadline, not once per message.
type wheel struct {
	slots [wheelSlots]*Conn
	now   uint32 // ticks since the server started
	n     int    // connections linked
}

func (w *wheel) add(c *Conn, due uint32) {
	if due <= w.now {
		due = w.now + 1
	}
	c.due = due
	s := &w.slots[due%wheelSlots]
	c.prev, c.next = nil, *s
	if *s != nil {
		(*s).prev = c
	}
	*s = c
	w.n++
}

func (w *wheel) remove(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if s := &w.slots[c.due%wheelSlots]; *s == c {
		*s = c.next
	} else {
		return // not linked
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	w.n--
}

// advance moves the wheel to now, calling fire for every connection whose
// deadline has passed; fire must re-add it or close it.
func (w *wheel) advance(now uint32, fire func(*Conn)) {
	for w.now != now {
		w.now++
		s := &w.slots[w.now%wheelSlots]
		c := *s
		*s = nil
		for c != nil {
			next := c.next
			c.prev, c.next = nil, nil
			w.n--
			if c.due <= w.now {
				fire(c)
			} else {
				w.add(c, c.due) // a later lap
			}
			c = next
		}
	}
}

// each calls fn for every linked connection. fn must not move a
// connection to a later slot, or each meets it again.
func (w *wheel) each(fn func(*Conn)) {
	for i := range w.slots {
		for c := w.slots[i]; c != nil; {
			next := c.next
			fn(c)
			c = next
		}
	}
}
