package cli

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports: the command line only turns flags and YAML into a
// configuration (config) and hands it to the composition root (server);
// the other packages it imports are those of its tool commands. A role's
// handlers, stores and adapters are assembled in internal/server.
func TestImports(t *testing.T) {
	const mod = "github.com/sluice-media/sluice/internal/"
	allowed := map[string]string{
		"config":      "flags and YAML",
		"server":      "every serving role",
		"archive":     "sluice archive cut",
		"clusterauth": "sluice cluster-get (signs its request)",
		"importer":    "sluice import",
		"mp4src":      "sluice push and import (MP4 input)",
		"player":      "sluice play",
		"push":        "sluice push",
		"urlsign":     "sluice sign-url",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if pkg, ok := strings.CutPrefix(p, mod); ok {
				if _, ok := allowed[pkg]; !ok {
					t.Errorf("%s imports internal/%s: assemble it in internal/server", f, pkg)
				}
			}
		}
	}
}
