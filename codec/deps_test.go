package codec

import (
	"go/build"
	"os/exec"
	"strings"
	"testing"
)

// TestDeps checks that codec depends on the standard library only, with
// and without the purego tag, and that only unsafe.go imports unsafe.
func TestDeps(t *testing.T) {
	t.Parallel()
	for _, tags := range []string{"", "purego"} {
		ctx := build.Default
		if tags != "" {
			ctx.BuildTags = append(ctx.BuildTags, tags)
		}
		pkg, err := ctx.ImportDir(".", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				t.Errorf("tags %q: codec imports %s; only the standard library is allowed", tags, imp)
			}
			if imp == "unsafe" && tags == "purego" {
				t.Errorf("purego build imports unsafe")
			}
		}
	}
	// The whole dependency tree, as the go command sees it.
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(gotool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/wsgate/wsgate/codec" {
			t.Errorf("codec depends on non-standard package %s", p)
		}
	}
}
