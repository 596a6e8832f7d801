package upgrade

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// allowedDeps are the only packages the library code may import: upgrade
// is a standard-library leaf, and does without net/http so that a
// handshake is parsed from the bytes the event loop already holds.
var allowedDeps = []string{"bytes", "crypto/sha1", "encoding/base64", "errors", "strconv"}

// TestDeps checks the imports of every non-test file, whatever its build
// tags, against allowedDeps, and, when the go command is available, that
// nothing outside the standard library or net/http is pulled in
// transitively.
func TestDeps(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(allowedDeps, path) {
				t.Errorf("%s imports %q; allowed: %v", name, path, allowedDeps)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no library files found")
	}

	goCmd, err := exec.LookPath("go")
	if err != nil || testing.Short() {
		return
	}
	cmd := exec.Command(goCmd, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		if path == "github.com/wsgate/wsgate/upgrade" {
			continue
		}
		if std != "true" || path == "net/http" || strings.HasPrefix(path, "net/") || path == "net" {
			t.Errorf("depends on %s (standard: %s)", path, std)
		}
	}
}
