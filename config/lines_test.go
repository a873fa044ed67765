package config

import "testing"

func TestLineIndex(t *testing.T) {
	src := `# [[clusters]] in a comment is no header
[proxy]
postgres_listen = "127.0.0.1:6432" # [[clusters]]
motd = """
[[clusters]]
name = "fake"
""" # still proxy
'quoted key' = 'x = [[clusters]]'
"dotted.key" = '''
[defaults]
'''

[[clusters]]
name = "a"
replicas = [
  "h:1", # one
  # a comment inside an array
  "h:2",
]
sharding.kind = "hash"
sharding . key = "k"
  [[clusters.shards]]
  primary = "h:1"
  range = [ [1, 2], {lo = 3,
     hi = 4} ]

[[clusters]]
name = "b"

  [clusters.sharding]
  tables = { t1 = "x", t2 = "y" }

  [[clusters.shards]]
  primary = "h:3"
  [[clusters.shards]]
  primary = "h:4"
  x = 1979-05-27 07:32:00Z
  y = "tail"
[[users]]
name = "u"
`
	x := indexLines([]byte(src))
	want := map[string]int{
		"proxy":                             2,
		"proxy.postgres_listen":             3,
		"proxy.motd":                        4,
		`proxy."quoted key"`:                8,
		`proxy."dotted.key"`:                9,
		"clusters[0]":                       13,
		"clusters[0].name":                  14,
		"clusters[0].replicas":              15,
		"clusters[0].replicas[0]":           16,
		"clusters[0].replicas[1]":           18,
		"clusters[0].sharding":              20,
		"clusters[0].sharding.kind":         20,
		"clusters[0].sharding.key":          21,
		"clusters[0].shards":                22,
		"clusters[0].shards[0]":             22,
		"clusters[0].shards[0].primary":     23,
		"clusters[0].shards[0].range[0]":    24,
		"clusters[0].shards[0].range[1]":    24,
		"clusters[0].shards[0].range[1].hi": 25,
		"clusters[1]":                       27,
		"clusters[1].name":                  28,
		"clusters[1].sharding":              30,
		"clusters[1].sharding.tables.t2":    31,
		"clusters[1].shards[0].primary":     34,
		"clusters[1].shards[1]":             35,
		"clusters[1].shards[1].x":           37,
		"clusters[1].shards[1].y":           38,
		"users[0].name":                     40,
		// Missing keys fall back to their table.
		"clusters[1].primary":         27,
		"clusters[1].shards[1].range": 35,
		"defaults.pool_size":          0,
	}
	for path, line := range want {
		if got := x.lineOf(path); got != line {
			t.Errorf("lineOf(%s) = %d, want %d", path, got, line)
		}
	}
	if t.Failed() {
		t.Logf("index:\n%s", x)
	}
}

func TestParentPath(t *testing.T) {
	tests := map[string]string{
		"a.b[1].c":     "a.b[1]",
		"a.b[1]":       "a.b",
		"a":            "",
		`a."x.y[2]"`:   "a",
		`a."q\".z".b`:  `a."q\".z"`,
		`"dotted.key"`: "",
	}
	for in, want := range tests {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%s) = %s, want %s", in, got, want)
		}
	}
}
