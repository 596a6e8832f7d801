package wsgate

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
)

// TestReview4LegacyAPIMemory: POST /api answers a line that names no
// method ("{}") with a 45-byte error line instead of refusing the
// request (Centrifugo v6.9.1 answers 400 to {"method":"","params":{}}),
// and it holds every reply until the last line, then joins them. A body
// of 3-byte lines thus costs about 140 times its size: measured here, a
// 4 MiB body of "{}\n" made a 59 MB answer and 591 MB of allocations,
// so the 16 MiB body limit still lets one request allocate gigabytes.
// This test sends 1 MiB of "{}\n" and wants the node to allocate less
// than 32 MiB for it.
func TestReview4LegacyAPIMemory(t *testing.T) {
	n := startNode(t, gwConfig())
	body := strings.Repeat("{}\n", (1<<20)/3)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	req, _ := http.NewRequest("POST", n.api+"/api", strings.NewReader(body))
	req.Header.Set("X-API-Key", gwAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&m1)
	if alloc := (m1.TotalAlloc - m0.TotalAlloc) >> 20; alloc >= 32 {
		t.Errorf("POST /api with %d lines of {}: status %d, %d bytes answered, %d MiB allocated; want less than 32 MiB",
			(1<<20)/3, resp.StatusCode, size, alloc)
	}
}
