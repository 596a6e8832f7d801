package wsgate

import (
	"testing"
)

// TestReview3APIIdempotencyKeyScope: an idempotency key is scoped to its
// channel, but wsgate joins the two with a NUL byte, so channel "A\x00B"
// with key "C" and channel "A" with key "B\x00C" share one cache entry:
// the second publish is lost and answered with the position of the
// other channel. Both strings are valid JSON and accepted by both
// servers.
//
// Against Centrifugo v6.9.1:
//
//	publish {"channel":"chat:n\u0000b","data":{},"idempotency_key":"c"}
//	→ {"result":{"offset":1,"epoch":"RyEkgdRO"}}
//	publish {"channel":"chat:n","data":{},"idempotency_key":"b\u0000c"}
//	→ {"result":{"offset":1,"epoch":"fShdtXCf"}}       (another epoch: published)
//	history {"channel":"chat:n","limit":-1}
//	→ {"result":{"publications":[{"data":{},"offset":1}],"epoch":"fShdtXCf","offset":1}}
//
// wsgate answers the second publish with the first channel's epoch and
// keeps no publication in chat:n.
func TestReview3APIIdempotencyKeyScope(t *testing.T) {
	n := startNode(t, gwConfig())
	for _, body := range []string{
		`{"channel":"chat:n\u0000b","data":{},"idempotency_key":"c"}`,
		`{"channel":"chat:n","data":{},"idempotency_key":"b\u0000c"}`,
	} {
		status, out := n.apiRaw(t, "publish", gwAPIKey, body)
		if status != 200 {
			t.Fatalf("publish %s: %d %s", body, status, out)
		}
	}
	got, top, code := review3History(t, n, `{"channel":"chat:n","limit":-1}`)
	if code != 0 || top != 1 || len(got) != 1 || got[0] != 1 {
		t.Fatalf("history of chat:n: offsets %v top %d error %d; Centrifugo keeps the publication (offset 1, top 1)", got, top, code)
	}
}
