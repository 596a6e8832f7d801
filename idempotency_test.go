package wsgate

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
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
	if _, kept := c.m[hashKey("k")]; kept || len(c.m) != 1 {
		t.Fatalf("after a sweep the cache holds %d keys (expired one kept: %v); want 1", len(c.m), kept)
	}
}

// TestGatewayIdempotencyKeyMemory: an idempotency key is remembered for
// IdempotentResultTTL, but not its bytes: the API takes keys of any
// length (up to its 16 MiB body), and kept whole, a few requests with
// long keys held megabytes each for five minutes. A repeated key still
// answers the first publication's position.
func TestGatewayIdempotencyKeyMemory(t *testing.T) {
	n := startNode(t, gwConfig())
	const keys, size = 8, 2 << 20
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var first map[string]any
	for i := range keys {
		key := strings.Repeat(strconv.Itoa(i), size)
		m := n.apiCall(t, "publish", map[string]any{"channel": "idem", "data": json.RawMessage(`1`), "idempotency_key": key})
		if i == 0 {
			first = m
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	again := n.apiCall(t, "publish", map[string]any{"channel": "idem", "data": json.RawMessage(`1`),
		"idempotency_key": strings.Repeat("0", size)})
	if fmt.Sprint(again["result"]) != fmt.Sprint(first["result"]) {
		t.Fatalf("repeated key answered %v, the first publish %v", again["result"], first["result"])
	}
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > keys*size/4 {
		t.Fatalf("%d keys of %d bytes left the heap %d MiB larger", keys, size, grown>>20)
	}
}
