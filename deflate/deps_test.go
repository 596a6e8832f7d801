package deflate

import (
	"go/build"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps checks that deflate imports only the standard library and
// klauspost/compress/flate, and that its whole dependency tree is the
// standard library and klauspost/compress (nothing of wsgate, no gnet).
func TestDeps(t *testing.T) {
	t.Parallel()
	pkg, err := build.Default.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") && imp != "github.com/klauspost/compress/flate" {
			t.Errorf("deflate imports %s; only the standard library and github.com/klauspost/compress/flate are allowed", imp)
		}
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(gotool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/wsgate/wsgate/deflate" && !strings.HasPrefix(p, "github.com/klauspost/compress/") {
			t.Errorf("deflate depends on %s", p)
		}
	}
}
