package wsgate

import (
	"strings"
	"testing"
)

// TestReview4LegacyAPIAnswers: the older single endpoint, POST /api,
// answered otherwise than by Centrifugo v6.9.1 (same key, same
// configuration; answers quoted from a run of both):
//
//	{"method":"info"}                                 → 200 {"result":{"nodes":…}}   (params may be left out)
//	{"method":"Info","params":{}}                     → 200 {"result":{"nodes":…}}   (the method's case is ignored)
//	{"method":"info","params":{}}\n{"method":"nosuch","params":{}} → 400
//	{"method":"batch","params":{"commands":[]}}       → 400
//	{"method":"","params":{}}                         → 400
//	{"method":1,"params":{}}                          → 200 {"error":{"code":107,"message":"bad request"}}
//
// wsgate answers 400, 104, 200 (a result and a 104 line), 104, 104 and
// 400. The first two break the older API libraries that send such
// commands; with the third, a request Centrifugo refuses as a whole has
// run its good lines.
func TestReview4LegacyAPIAnswers(t *testing.T) {
	n := startNode(t, gwConfig())
	for _, c := range []struct {
		body   string
		status int
		prefix string // of the answer, for status 200
	}{
		{`{"method":"info"}`, 200, `{"result":{"nodes":`},
		{`{"method":"Info","params":{}}`, 200, `{"result":{"nodes":`},
		{`{"method":"info","params":{}}` + "\n" + `{"method":"nosuch","params":{}}`, 400, ""},
		{`{"method":"batch","params":{"commands":[]}}`, 400, ""},
		{`{"method":"","params":{}}`, 400, ""},
		{`{"method":1,"params":{}}`, 200, `{"error":{"code":107`},
	} {
		status, out := n.postLegacy(t, c.body)
		if status != c.status || !strings.HasPrefix(string(out), c.prefix) {
			t.Errorf("POST /api %q: %d %.120s; Centrifugo: %d %s…", c.body, status, out, c.status, c.prefix)
		}
	}
}
