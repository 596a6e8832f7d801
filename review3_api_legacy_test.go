package wsgate

import (
	"bytes"
	"testing"
)

// TestReview3APILegacyEndpoint: Centrifugo v6.9.1 still serves the
// single endpoint POST /api, whose body is one command per line,
// {"method": …, "params": …}, answered by one reply per line. Backends
// on the older API libraries (cent, pycent, phpcent before their v5)
// use it. The wsgate binary answers 307 with Location /api/, and
// Node.APIHandler answers 404.
//
// Against Centrifugo v6.9.1:
//
//	POST /api {"method":"publish","params":{"channel":"chat:m","data":{}}}
//	→ 200 {"result":{"offset":1,"epoch":"lBkEpNnJ"}}
//	POST /api {"method":"publish",…}\n{"method":"history","params":{"channel":"chat:m"}}
//	→ 200 {"result":{"offset":2,"epoch":"lBkEpNnJ"}}\n{"result":{"publications":[],"epoch":"lBkEpNnJ","offset":2}}
func TestReview3APILegacyEndpoint(t *testing.T) {
	n := startNode(t, gwConfig())
	status, b := n.postLegacy(t, `{"method":"publish","params":{"channel":"chat:m","data":{}}}`)
	want := `{"result":{"offset":1,"epoch":"`
	if status != 200 || !bytes.HasPrefix(b, []byte(want)) {
		t.Fatalf("POST /api publish: %d %q; Centrifugo: 200 %s…", status, b, want)
	}
}
