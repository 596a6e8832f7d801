package wsgate

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerifyHS256 verifies a connection token like the ones SDKs
// send: every connect pays for it, and what it allocates is most of the
// garbage a connect makes.
func BenchmarkVerifyHS256(b *testing.B) {
	v, err := newVerifier("client.token", gwSecret, "", "", "", "")
	if err != nil {
		b.Fatal(err)
	}
	tok := token(b, jwt.MapClaims{"sub": "user-42", "exp": time.Now().Add(time.Hour).Unix(), "info": map[string]any{"name": "x"}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
