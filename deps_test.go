package wsgate

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoMetricsLibrary checks that the gateway and its engine do not
// depend on the Prometheus client: embedders who do not serve metrics do
// not compile it (the pprof package, used by the command, does).
func TestNoMetricsLibrary(t *testing.T) {
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(gotool, "list", "-deps", "-f", "{{.ImportPath}}", ".", "./loop").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/prometheus/") {
			t.Errorf("the gateway depends on %s", p)
		}
	}
}
