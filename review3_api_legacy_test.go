package wsgate

import (
	"bytes"
	"io"
	"net/http"
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
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", n.api+"/api", bytes.NewReader([]byte(`{"method":"publish","params":{"channel":"chat:m","data":{}}}`)))
	req.Header.Set("X-API-Key", gwAPIKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := `{"result":{"offset":1,"epoch":"`
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte(want)) {
		t.Fatalf("POST /api publish: %d %q (Location %q); Centrifugo: 200 %s…", resp.StatusCode, b, resp.Header.Get("Location"), want)
	}
}
