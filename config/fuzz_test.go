package config

import (
	"os"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes: it must return a Config or an
// error, never panic or hang, and a Config it returns must pass again.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../testdata/config.example.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.toml")
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned %v and %v", cfg, err)
		}
		if err == nil {
			_ = Diff(cfg, cfg)
			for _, c := range cfg.Clusters {
				if cfg.Cluster(c.Protocol, c.Database) == nil {
					t.Fatalf("cluster %q not found by lookup", c.Name)
				}
			}
		}
	})
}
