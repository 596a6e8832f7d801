package wsgate

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// TestReview3APIKeyInQuery: Centrifugo v6.9.1 also takes the API key
// from the api_key query parameter; wsgate answers 401.
//
// Against Centrifugo v6.9.1 (http_api.key "KEY", no key header):
//
//	POST /api/info?api_key=KEY  {}   → 200 {"result":{"nodes":[…]}}
//	POST /api/info?api_key=bad  {}   → 401
//
// wsgate answers 401 Unauthorized to the first.
func TestReview3APIKeyInQuery(t *testing.T) {
	n := startNode(t, gwConfig())
	post := func(key string) (int, string) {
		req, _ := http.NewRequest("POST", n.api+"/api/info?api_key="+key, bytes.NewReader([]byte(`{}`)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, _ := post("bad"); status != http.StatusUnauthorized {
		t.Fatalf("api_key=bad: status %d, want 401", status)
	}
	if status, body := post(gwAPIKey); status != http.StatusOK {
		t.Fatalf("api_key=<key>: status %d %q; Centrifugo answers 200 with the info result", status, body)
	}
}
