package router

import (
	"strings"
	"sync"
)

// AnalyzerFor returns the Analyzer of dialect d for a cluster's function
// lists, as the config writes them (write_functions and
// read_only_functions: comma-separated, any case). Both protocols take
// their analyzers here, so the lists mean the same for PostgreSQL and
// MySQL. Clusters with the same lists share one Analyzer, and a reload
// that keeps the lists keeps it, with its cache of verdicts.
func AnalyzerFor(d Dialect, writeFunctions, readOnlyFunctions string) *Analyzer {
	k := analyzerKey{d, writeFunctions, readOnlyFunctions}
	if a, ok := analyzers.Load(k); ok {
		return a.(*Analyzer)
	}
	a, _ := analyzers.LoadOrStore(k, NewAnalyzer(d, Options{
		WriteFunctions:    SplitNames(writeFunctions),
		ReadOnlyFunctions: SplitNames(readOnlyFunctions),
	}))
	return a.(*Analyzer)
}

type analyzerKey struct {
	d            Dialect
	write, reads string
}

// analyzers holds one Analyzer per dialect and pair of lists. Configs
// name few lists, so it is not bounded.
var analyzers sync.Map

// SplitNames reads a comma-separated list of function names, lower case.
func SplitNames(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.ToLower(strings.TrimSpace(f)); f != "" {
			out = append(out, f)
		}
	}
	return out
}
