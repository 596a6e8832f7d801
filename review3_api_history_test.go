package wsgate

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// review3History calls /api/history with body and returns the offsets
// of the publications in the result, the result's stream offset and
// the error code (0 for a result).
func review3History(t *testing.T, n *gwNode, body string) (offsets []uint64, top uint64, code uint32) {
	t.Helper()
	status, out := n.apiRaw(t, "history", gwAPIKey, body)
	if status != 200 {
		t.Fatalf("history %s: status %d %s", body, status, out)
	}
	var r struct {
		Result *struct {
			Publications []struct {
				Offset uint64 `json:"offset"`
			} `json:"publications"`
			Offset uint64 `json:"offset"`
		} `json:"result"`
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("history %s: %s: %v", body, out, err)
	}
	if r.Error != nil {
		return nil, 0, r.Error.Code
	}
	offsets = []uint64{}
	for _, p := range r.Result.Publications {
		offsets = append(offsets, p.Offset)
	}
	return offsets, r.Result.Offset, 0
}

// TestReview3APIHistorySinceReverse: with since and reverse, Centrifugo
// v6.9.1 pages backwards: the publications before since.offset, newest
// first. wsgate returns the ones after it instead.
//
// Against Centrifugo v6.9.1, 5 publications in a channel with history:
//
//	{"channel":"chat:h","limit":-1,"since":{"offset":4},"reverse":true}
//	→ {"result":{"publications":[{…,"offset":3},{…,"offset":2},{…,"offset":1}],"epoch":…,"offset":5}}
//	{"channel":"chat:h","limit":2,"since":{"offset":4},"reverse":true}
//	→ {"result":{"publications":[{…,"offset":3},{…,"offset":2}],"epoch":…,"offset":5}}
//	{"channel":"chat:h","limit":-1,"since":{"offset":1},"reverse":true}
//	→ {"result":{"publications":[],"epoch":…,"offset":5}}
//
// wsgate answers [5], [5] and [5,4,3,2].
func TestReview3APIHistorySinceReverse(t *testing.T) {
	n := startNode(t, gwConfig())
	for i := range 5 {
		n.publishAPI(t, "h", fmt.Sprintf(`{"i":%d}`, i+1))
	}
	for _, c := range []struct {
		body string
		want []uint64
	}{
		{`{"channel":"h","limit":-1,"since":{"offset":4},"reverse":true}`, []uint64{3, 2, 1}},
		{`{"channel":"h","limit":2,"since":{"offset":4},"reverse":true}`, []uint64{3, 2}},
		{`{"channel":"h","limit":-1,"since":{"offset":1},"reverse":true}`, []uint64{}},
	} {
		got, top, code := review3History(t, n, c.body)
		if code != 0 || top != 5 || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: offsets %v top %d error %d; Centrifugo: offsets %v top 5", c.body, got, top, code, c.want)
		}
	}
}

// TestReview3APIHistorySinceOutOfRange: the history API of Centrifugo
// v6.9.1 answers error 112 only for another epoch. A since older than
// the history kept gets what is kept; a since past the top, or one in a
// removed history, gets no publications. wsgate answers 112 for all of
// them, so a backend paging a trimmed history from offset 0 gets an
// error instead of the page.
//
// Against Centrifugo v6.9.1, 15 publications in a channel keeping 10:
//
//	{"channel":"chat:t","limit":-1,"since":{"offset":1}}
//	→ {"result":{"publications":[{…"offset":6},…,{…"offset":15}],"epoch":…,"offset":15}}
//	{"channel":"chat:t","limit":2,"since":{"offset":0}}
//	→ {"result":{"publications":[{"data":{"i":6},"offset":6},{"data":{"i":7},"offset":7}],"epoch":"ubYVwals","offset":15}}
//	{"channel":"chat:h","limit":-1,"since":{"offset":100,"epoch":"<its epoch>"}}   (top 5)
//	→ {"result":{"publications":[],"epoch":"dlloEMet","offset":5}}
//	after history_remove of chat:t:
//	{"channel":"chat:t","limit":-1,"since":{"offset":3}}
//	→ {"result":{"publications":[],"epoch":"ubYVwals","offset":15}}
//
// wsgate answers {"error":{"code":112,"message":"unrecoverable position"}} to each.
func TestReview3APIHistorySinceOutOfRange(t *testing.T) {
	n := startNode(t, gwConfig()) // "private" keeps 10 publications
	for i := range 15 {
		n.publishAPI(t, "private:t", fmt.Sprintf(`{"i":%d}`, i+1))
	}
	check := func(body string, want []uint64, wantTop uint64) {
		t.Helper()
		got, top, code := review3History(t, n, body)
		if code != 0 || top != wantTop || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: offsets %v top %d error %d; Centrifugo: offsets %v top %d", body, got, top, code, want, wantTop)
		}
	}
	check(`{"channel":"private:t","limit":-1,"since":{"offset":1}}`, []uint64{6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 15)
	check(`{"channel":"private:t","limit":2,"since":{"offset":0}}`, []uint64{6, 7}, 15)
	m := n.apiCall(t, "history", map[string]any{"channel": "private:t"})
	epoch := m["result"].(map[string]any)["epoch"].(string)
	check(`{"channel":"private:t","limit":-1,"since":{"offset":100,"epoch":"`+epoch+`"}}`, []uint64{}, 15)
	n.apiCall(t, "history_remove", map[string]any{"channel": "private:t"})
	check(`{"channel":"private:t","limit":-1,"since":{"offset":3}}`, []uint64{}, 15)
}
