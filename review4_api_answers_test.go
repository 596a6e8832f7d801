package wsgate

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestReview4APIDisconnectNobodyCodes: Centrifugo v6.9.1 takes any
// disconnect object; for nobody it answers {"result":{}} to each of
// these. wsgate answers {"error":{"code":107,"message":"bad request"}}
// to all of them: the code check comes before the nobody answer, and it
// refuses codes Centrifugo takes (0, 999, 1005, beyond 65535) and a
// reason over 123 bytes.
func TestReview4APIDisconnectNobodyCodes(t *testing.T) {
	n := startNode(t, gwConfig())
	for _, body := range []string{
		`{"user":"nobody","disconnect":{"code":0,"reason":"x"}}`,
		`{"user":"nobody","disconnect":{"code":999,"reason":"x"}}`,
		`{"user":"nobody","disconnect":{"code":1005,"reason":"x"}}`,
		`{"user":"nobody","disconnect":{"code":70000,"reason":"x"}}`,
		`{"disconnect":{"code":1005}}`,
		`{"user":"nobody","disconnect":{"code":4000,"reason":"` + strings.Repeat("r", 200) + `"}}`,
	} {
		status, out := n.apiRaw(t, "disconnect", gwAPIKey, body)
		if status != 200 || string(out) != `{"result":{}}` {
			t.Errorf("disconnect %.80s: %d %s; Centrifugo: 200 {\"result\":{}}", body, status, out)
		}
	}
}

// TestReview4APIHistoryReverseBeyondTop: with reverse, Centrifugo v6.9.1
// answers a since past top+1 with no publications (5 publications, top
// 5; {"offset":6} gets all five, newest first, {"offset":100} none):
//
//	{"channel":"…","limit":-1,"since":{"offset":100,"epoch":"<its epoch>"},"reverse":true}
//	→ {"result":{"publications":[],"epoch":…,"offset":5}}
//
// wsgate answers [5,4,3,2,1].
func TestReview4APIHistoryReverseBeyondTop(t *testing.T) {
	n := startNode(t, gwConfig())
	for i := range 5 {
		n.publishAPI(t, "rb", fmt.Sprintf(`{"i":%d}`, i))
	}
	m := n.apiCall(t, "history", map[string]any{"channel": "rb"})
	epoch := m["result"].(map[string]any)["epoch"].(string)
	got, top, code := review3History(t, n, `{"channel":"rb","limit":-1,"since":{"offset":6,"epoch":"`+epoch+`"},"reverse":true}`)
	if code != 0 || top != 5 || !reflect.DeepEqual(got, []uint64{5, 4, 3, 2, 1}) {
		t.Errorf("since 6 reverse: %v top %d error %d; Centrifugo: [5 4 3 2 1] top 5", got, top, code)
	}
	got, top, code = review3History(t, n, `{"channel":"rb","limit":-1,"since":{"offset":100,"epoch":"`+epoch+`"},"reverse":true}`)
	if code != 0 || top != 5 || !reflect.DeepEqual(got, []uint64{}) {
		t.Errorf("since 100 reverse: %v top %d error %d; Centrifugo: [] top 5", got, top, code)
	}
}

// TestAPIDisconnectAnyCode: the codes and reasons the API takes reach
// the client as a close frame may carry them: a 200-byte reason cut to
// 123 bytes (not a Close that fails and leaves the client connected), a
// code that may not be sent as 1011, 1005 ("no status") as a close frame
// without a code (read here as 0).
func TestAPIDisconnectAnyCode(t *testing.T) {
	n := startNode(t, gwConfig())
	for _, c := range []struct {
		code, want uint32
		reason     string
	}{
		{4000, 4000, strings.Repeat("é", 100)},
		{1005, 0, ""},
		{999, 1011, "x"},
		{70000, 1011, "x"},
	} {
		g := dialNode(t, n.addr, false)
		user := fmt.Sprint("d", c.code)
		g.connect(token(t, jwt.MapClaims{"sub": user}))
		body := fmt.Sprintf(`{"user":%q,"disconnect":{"code":%d,"reason":%q}}`, user, c.code, c.reason)
		if status, out := n.apiRaw(t, "disconnect", gwAPIKey, body); status != 200 || string(out) != `{"result":{}}` {
			t.Fatalf("disconnect: %d %s", status, out)
		}
		for {
			_, err := g.next()
			var ce closedError
			if errors.As(err, &ce) {
				if uint32(ce.code) != c.want || len(ce.reason) > 123 || !strings.HasPrefix(c.reason, ce.reason) {
					t.Errorf("code %d: closed %d %q, want %d and a prefix of the reason", c.code, ce.code, ce.reason, c.want)
				}
				break
			}
			if err != nil {
				t.Fatalf("code %d: %v", c.code, err)
			}
		}
	}
}
