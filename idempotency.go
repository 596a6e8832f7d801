package wsgate

import (
	"crypto/sha256"
	"sync"
	"time"
)

// IdempotencyCache remembers, for IdempotentResultTTL, the stream position
// that a publication made with an idempotency key got, so that a broker
// answers a repeated publish with that key with it instead of publishing
// again. It keeps a hash of each key, not the key (which can be long):
// an entry costs the same whatever the key's length. The zero value is
// ready; it is safe for concurrent use.
type IdempotencyCache struct {
	mu    sync.Mutex
	m     map[idemKey]idemResult
	sweep time.Time // when expired keys are next dropped
}

// idemKey is the SHA-256 of an idempotency key, cut to 128 bits.
type idemKey [16]byte

func hashKey(key string) idemKey {
	sum := sha256.Sum256([]byte(key))
	return idemKey(sum[:16])
}

type idemResult struct {
	sp  StreamPosition
	exp time.Time
}

// Lookup returns the position remembered for key, if it has not expired.
func (c *IdempotencyCache) Lookup(key string, now time.Time) (StreamPosition, bool) {
	h := hashKey(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.m[h]
	if !ok || now.After(r.exp) {
		return StreamPosition{}, false
	}
	return r.sp, true
}

// Remember records sp for key until now+IdempotentResultTTL. Expired keys
// are dropped by a pass at most once a minute.
func (c *IdempotencyCache) Remember(key string, sp StreamPosition, now time.Time) {
	h := hashKey(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[idemKey]idemResult)
	}
	if now.After(c.sweep) {
		for k, r := range c.m {
			if now.After(r.exp) {
				delete(c.m, k)
			}
		}
		c.sweep = now.Add(time.Minute)
	}
	c.m[h] = idemResult{sp: sp, exp: now.Add(IdempotentResultTTL)}
}
