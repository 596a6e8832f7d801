package wsgate

import (
	"bytes"
	"testing"
)

// TestReview5LegacyAPICommandsOnOneLine: Centrifugo v6.9.1 reads the
// body of POST /api as a stream of JSON values, not as lines: two
// commands on one line (separated by a space, by nothing, or by a bare
// CR) are both run, each answered on its own line. Against it:
//
//	{"method":"publish","params":{"channel":"a","data":{}}} {"method":"publish","params":{"channel":"a","data":{}}}
//	→ 200 {"result":{"offset":5,…}}\n{"result":{"offset":6,…}}
//
// (and the same with "}{" and "}\r{" between them). wsgate splits on
// '\n' only and answers 400 to each.
func TestReview5LegacyAPICommandsOnOneLine(t *testing.T) {
	n := startNode(t, gwConfig())
	cmd := `{"method":"publish","params":{"channel":"chat:one","data":{}}}`
	for _, sep := range []string{" ", "", "\r"} {
		status, out := n.postLegacy(t, cmd+sep+cmd)
		if status != 200 || bytes.Count(out, []byte(`"result"`)) != 2 {
			t.Errorf("two publishes separated by %q: %d %s; Centrifugo: 200 and two results", sep, status, out)
		}
	}
}
