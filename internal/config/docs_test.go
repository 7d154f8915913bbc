package config

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDocsYAML: every YAML example of docs/config.md and
// docs/distribution.md decodes into a Config with no unknown key.
func TestDocsYAML(t *testing.T) {
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```")
	for _, doc := range []string{"../../docs/config.md", "../../docs/distribution.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		ms := block.FindAllStringSubmatch(string(b), -1)
		if len(ms) == 0 {
			t.Fatalf("%s: no YAML example", doc)
		}
		for i, m := range ms {
			c := Defaults()
			dec := yaml.NewDecoder(strings.NewReader(m[1]))
			dec.KnownFields(true)
			if err := dec.Decode(&c); err != nil {
				t.Errorf("%s, example %d: %v\n%s", doc, i+1, err, m[1])
			}
		}
	}
}
