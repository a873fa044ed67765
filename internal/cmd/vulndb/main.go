// Command vulndb writes the offline Go vulnerability database that
// `make test` runs govulncheck against when the online database cannot be
// reached (the build machines have no route to it).
//
// It reads the OSV reports of a golang/vulndb checkout (data/osv/*.json),
// keeps those that name a module of this build (the modules listed on
// stdin, one `go list -m all` line each, plus stdlib and toolchain), and
// writes them in the layout govulncheck's -db file:// reads:
// index/db.json, index/modules.json, index/vulns.json and ID/<id>.json.
// The module list is written too (modules.txt), so that `make test` can
// tell when go.mod names a module the snapshot was not made for.
//
//	go list -m all | go run ./internal/cmd/vulndb -osv ../vulndb/data/osv -date 2026-08-21 -out testdata/vulndb
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

type osv struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string `json:"type"`
			Events []struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			} `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
}

type modVuln struct {
	ID       string `json:"id"`
	Modified string `json:"modified"`
	Fixed    string `json:"fixed,omitempty"`
}

type modEntry struct {
	Path  string    `json:"path"`
	Vulns []modVuln `json:"vulns"`
}

type vulnEntry struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases,omitempty"`
}

func main() {
	osvDir := flag.String("osv", "", "data/osv directory of a golang/vulndb checkout")
	date := flag.String("date", "", "date of that checkout (YYYY-MM-DD), used where a report has no modification time")
	out := flag.String("out", "testdata/vulndb", "directory to write")
	flag.Parse()
	if err := run(*osvDir, *date, *out); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
}

func run(osvDir, date, out string) error {
	if osvDir == "" || date == "" {
		return fmt.Errorf("-osv and -date are required")
	}
	day, err := time.Parse("2006-01-02", date)
	if err != nil {
		return err
	}
	stamp := day.UTC().Format(time.RFC3339)

	mods := map[string]bool{"stdlib": true, "toolchain": true}
	var listed []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			mods[f[0]] = true
			listed = append(listed, f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}

	files, err := filepath.Glob(filepath.Join(osvDir, "*.json"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no OSV reports in %s", osvDir)
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	for _, d := range []string{"index", "ID"} {
		if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
			return err
		}
	}

	byMod := map[string][]modVuln{}
	var vulns []vulnEntry
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var v osv
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		modified := v.Modified
		if modified == "" || strings.HasPrefix(modified, "0001-") {
			modified = stamp
		}
		keep := false
		for _, a := range v.Affected {
			if !mods[a.Package.Name] {
				continue
			}
			keep = true
			fixed := ""
			for _, r := range a.Ranges {
				for _, e := range r.Events {
					if e.Fixed != "" {
						fixed = e.Fixed // the latest fixed version is listed last
					}
				}
			}
			byMod[a.Package.Name] = append(byMod[a.Package.Name], modVuln{ID: v.ID, Modified: modified, Fixed: fixed})
		}
		if !keep {
			continue
		}
		// govulncheck compares modification times; give it a real one.
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return err
		}
		doc["modified"] = modified
		if p, _ := doc["published"].(string); p == "" || strings.HasPrefix(p, "0001-") {
			doc["published"] = modified
		}
		if err := writeJSON(filepath.Join(out, "ID", v.ID+".json"), doc); err != nil {
			return err
		}
		vulns = append(vulns, vulnEntry{ID: v.ID, Modified: modified, Aliases: v.Aliases})
	}

	var index []modEntry
	for m, vs := range byMod {
		sort.Slice(vs, func(i, j int) bool { return vs[i].ID < vs[j].ID })
		index = append(index, modEntry{Path: m, Vulns: vs})
	}
	sort.Slice(index, func(i, j int) bool { return index[i].Path < index[j].Path })
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), index); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "index", "vulns.json"), vulns); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "index", "db.json"), map[string]string{"modified": stamp}); err != nil {
		return err
	}
	sort.Strings(listed)
	note := fmt.Sprintf("# golang/vulndb data/osv as of %s (CC-BY-4.0), filtered to these modules:\n%s\n", date, strings.Join(listed, "\n"))
	if err := os.WriteFile(filepath.Join(out, "modules.txt"), []byte(note), 0o644); err != nil {
		return err
	}
	fmt.Printf("vulndb: %d reports for %d modules of %d listed (of %d reports)\n", len(vulns), len(index), len(listed), len(files))
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
