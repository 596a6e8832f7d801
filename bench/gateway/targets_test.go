package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The SDK tests share one server per target kind (started on first use,
// stopped by TestMain); each test uses channels of its own.
var (
	servers   sync.Map // kind -> *server
	serverDir string
)

type server struct {
	once sync.Once
	t    *Target
	err  error
	skip bool
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsgate-gateway-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverDir = dir
	code := m.Run()
	servers.Range(func(_, v any) bool {
		if s := v.(*server); s.t != nil {
			s.t.Close()
		}
		return true
	})
	os.RemoveAll(dir)
	os.Exit(code)
}

// inCI reports whether a missing tool is a failure (CI=true).
func inCI() bool { return os.Getenv("CI") == "true" }

// target returns the shared server of kind, starting it on first use. A
// missing binary skips the test, except in CI.
func target(t *testing.T, kind string) *Target {
	t.Helper()
	v, _ := servers.LoadOrStore(kind, &server{})
	s := v.(*server)
	s.once.Do(func() {
		bin, err := LookBinary(kind, serverDir)
		if err != nil {
			s.err, s.skip = err, !inCI()
			return
		}
		s.t, s.err = Start(kind, bin, DefaultConfig(100), serverDir)
	})
	if s.err != nil {
		if s.skip {
			t.Skip(s.err)
		}
		t.Fatal(s.err)
	}
	return s.t
}

// forEachTarget runs fn as a parallel subtest per target kind.
func forEachTarget(t *testing.T, fn func(t *testing.T, tg *Target)) {
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, target(t, kind))
		})
	}
}

var channelSeq atomic.Uint64

// channelName returns a channel of namespace ns (none when "") used by no
// other test of this run against the same server.
func channelName(ns, name string) string {
	ch := fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1e9, channelSeq.Add(1))
	if ns != "" {
		ch = ns + ":" + ch
	}
	return ch
}

// seqData is the publication data of the tests: a sequence number.
type seqData struct {
	Seq int `json:"seq"`
}

func seqJSON(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"seq":%d}`, i))
}

// publishSeq publishes seq from..to-1 to channel through the API and
// returns the offsets the API answered, checking that they increase by one
// and share one epoch.
func publishSeq(t *testing.T, tg *Target, channel string, from, to int) (offsets []uint64, epoch string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		res, err := tg.Publish(ctx, channel, seqJSON(i))
		if err != nil {
			t.Fatalf("api publish %d to %s: %v", i, channel, err)
		}
		if epoch == "" {
			epoch = res.Epoch
		}
		if res.Epoch != epoch || res.Epoch == "" {
			t.Fatalf("api publish %d: epoch %q; want %q (not empty)", i, res.Epoch, epoch)
		}
		if len(offsets) > 0 && res.Offset != offsets[len(offsets)-1]+1 {
			t.Fatalf("api publish %d: offset %d after %d", i, res.Offset, offsets[len(offsets)-1])
		}
		offsets = append(offsets, res.Offset)
	}
	return offsets, epoch
}

// received is a publication as a client saw it.
type received struct {
	Offset uint64 `json:"offset"`
	Seq    int    `json:"seq"`
}

// checkSequence checks that got is exactly the publications seq
// from..from+len(want)-1 with offsets want, in order.
func checkSequence(t *testing.T, what string, got []received, from int, want []uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d publications; want %d: %v", what, len(got), len(want), got)
	}
	for i := range min(len(got), len(want)) {
		if got[i].Offset != want[i] || got[i].Seq != from+i {
			t.Errorf("%s: publication %d is offset %d seq %d; want offset %d seq %d (all: %v)",
				what, i, got[i].Offset, got[i].Seq, want[i], from+i, got)
			return
		}
	}
}

// offsetRange returns from, from+1, …, to.
func offsetRange(from, to uint64) []uint64 {
	var o []uint64
	for i := from; i <= to; i++ {
		o = append(o, i)
	}
	return o
}

func TestTargetAPI(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg *Target) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ch := channelName(NSFeed, "api")
		offsets, _ := publishSeq(t, tg, ch, 0, 3)
		if offsets[0] != 1 {
			t.Errorf("first publication to a new channel: offset %d; want 1", offsets[0])
		}
		bad := *tg
		bad.Config.APIKey = "wrong"
		err := bad.Call(ctx, "publish", map[string]any{"channel": ch, "data": seqJSON(9)}, nil)
		if se, ok := err.(*StatusError); !ok || se.Status != 401 {
			t.Errorf("publish with a wrong API key: %v; want HTTP 401", err)
		}
		err = tg.Call(ctx, "publish", map[string]any{"data": seqJSON(9)}, nil)
		if ae, ok := err.(*APIError); !ok || ae.Code != 107 {
			t.Errorf("publish without a channel: %v; want error 107 (bad request)", err)
		}

		// The key may also come as "Authorization: apikey <key>".
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.API+"/publish",
			strings.NewReader(`{"channel":"`+ch+`","data":{"seq":3}}`))
		req.Header.Set("Authorization", "apikey "+tg.Config.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var reply struct{ Result PublishResult }
		json.Unmarshal(body, &reply)
		if resp.StatusCode != 200 || reply.Result.Offset != 4 {
			t.Errorf("publish with Authorization: apikey: HTTP %d %s; want 200 and offset 4", resp.StatusCode, body)
		}
	})
}
