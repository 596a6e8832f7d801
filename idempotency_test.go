package wsgate

import (
	"testing"
	"time"
)

// TestIdempotencyCache: a key answers with its position until
// IdempotentResultTTL has passed, and expired keys are dropped by the next
// sweep, so the cache does not grow with keys never seen again.
func TestIdempotencyCache(t *testing.T) {
	var c IdempotencyCache
	t0 := time.Unix(1_700_000_000, 0)
	sp := StreamPosition{Offset: 7, Epoch: "e"}
	if _, ok := c.Lookup("k", t0); ok {
		t.Fatal("an unknown key was found")
	}
	c.Remember("k", sp, t0)
	if got, ok := c.Lookup("k", t0.Add(IdempotentResultTTL)); !ok || got != sp {
		t.Fatalf("Lookup at the TTL = %v, %v; want %v", got, ok, sp)
	}
	if _, ok := c.Lookup("k", t0.Add(IdempotentResultTTL+time.Millisecond)); ok {
		t.Fatal("a key was found after its TTL")
	}
	c.Remember("other", sp, t0.Add(IdempotentResultTTL+2*time.Minute))
	if _, kept := c.m["k"]; kept || len(c.m) != 1 {
		t.Fatalf("after a sweep the cache holds %d keys (expired one kept: %v); want 1", len(c.m), kept)
	}
}
