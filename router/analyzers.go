package router

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/config"
)

// AnalyzerFor returns the Analyzer of dialect d for a cluster's function
// lists, as the config writes them (write_functions and
// read_only_functions: comma-separated, any case). Both protocols take
// their analyzers here, so the lists mean the same for PostgreSQL and
// MySQL. Clusters with the same lists share one Analyzer, and a reload
// that keeps the lists keeps it, with its cache of verdicts.
func AnalyzerFor(d Dialect, writeFunctions, readOnlyFunctions, sessionFunctions string) *Analyzer {
	k := analyzerKey{d, writeFunctions, readOnlyFunctions, sessionFunctions}
	if a, ok := analyzers.Load(k); ok {
		return a.(*Analyzer)
	}
	a, _ := analyzers.LoadOrStore(k, NewAnalyzer(d, Options{
		WriteFunctions:    SplitNames(writeFunctions),
		ReadOnlyFunctions: SplitNames(readOnlyFunctions),
		SessionFunctions:  SplitNames(sessionFunctions),
	}))
	return a.(*Analyzer)
}

// SettingsAnalyzer is AnalyzerFor with a cluster's function lists.
func SettingsAnalyzer(d Dialect, s config.Settings) *Analyzer {
	return AnalyzerFor(d, s.WriteFunctions, s.ReadOnlyFunctions, s.SessionFunctions)
}

type analyzerKey struct {
	d                     Dialect
	write, reads, session string
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

// Analyzers holds the Analyzer of each cluster of one front end in the
// config in force, published at each (re)load for both protocols: a
// reload that changes a cluster's write_functions or read_only_functions
// takes effect at the next transaction of every session, not only of the
// sessions that log in after it. Lookups are lock-free.
type Analyzers struct {
	m atomic.Pointer[map[string]*Analyzer]
}

// Publish makes the analyzers of cfg's clusters of protocol proto the
// ones in force. With splitOnly, only unsharded clusters with replicas
// get one (the others route without a verdict; sharded clusters take
// theirs from ShardCluster.Analyzer).
func (as *Analyzers) Publish(cfg *config.Config, proto config.Protocol, splitOnly bool) {
	d := Postgres
	if proto == config.MySQL {
		d = MySQL
	}
	next := make(map[string]*Analyzer)
	for i := range cfg.Clusters {
		cl := &cfg.Clusters[i]
		if cl.Protocol != proto || splitOnly && (cl.Sharding != nil || len(cl.Replicas) == 0 || cl.Primary == "") {
			continue
		}
		next[cl.Name] = SettingsAnalyzer(d, cl.Settings)
	}
	as.m.Store(&next)
}

// For returns the analyzer in force of the cluster named cluster, nil
// when it has none.
func (as *Analyzers) For(cluster string) *Analyzer {
	if m := as.m.Load(); m != nil {
		return (*m)[cluster]
	}
	return nil
}

// Verdict keeps a statement's analysis with the Analyzer that made it,
// for a prepared statement whose verdict is computed once and read at
// each execution: a reload that gives the cluster another analyzer
// (other function lists) makes it stale, and Of analyzes the text again.
// Safe for concurrent use (pgwire shares prepared statements between
// clients).
type Verdict struct {
	p atomic.Pointer[verdict]
}

type verdict struct {
	by *Analyzer
	a  *Analysis
}

// Of returns the verdict of an on text, computing it when the one kept
// was made by another analyzer (or none was).
func (v *Verdict) Of(an *Analyzer, text string) *Analysis {
	if a := v.Get(an); a != nil {
		return a
	}
	a := an.Analyze(text)
	v.Set(an, a)
	return a
}

// Get returns the verdict kept when an made it, else nil.
func (v *Verdict) Get(an *Analyzer) *Analysis {
	if p := v.p.Load(); p != nil && p.by == an {
		return p.a
	}
	return nil
}

// Set keeps a, made by an.
func (v *Verdict) Set(an *Analyzer, a *Analysis) { v.p.Store(&verdict{an, a}) }
