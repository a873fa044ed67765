package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// pgKey identifies a row group: the same load through every target.
type pgKey struct {
	script, mode string
	clients      int
}

// rows keeps every round's run of each target, per row key, in the
// order the keys came; a cell reports the median of its runs (median).
type rows[K comparable] struct {
	keys []K
	runs map[K]map[string][]result
}

func (r *rows[K]) add(k K, target string, res result) {
	if r.runs == nil {
		r.runs = map[K]map[string][]result{}
	}
	if r.runs[k] == nil {
		r.keys = append(r.keys, k)
		r.runs[k] = map[string][]result{}
	}
	r.runs[k][target] = append(r.runs[k][target], res)
}

// row is the reported run of each target for k.
func (r *rows[K]) row(k K) map[string]result {
	out := make(map[string]result, len(r.runs[k]))
	for t, rs := range r.runs[k] {
		out[t] = median(rs)
	}
	return out
}

type pgResults struct {
	rows[pgKey]
	targets []string
}

func newPgResults(targets []string) *pgResults { return &pgResults{targets: targets} }

func (p *pgResults) add(c pgCase, r result) {
	p.rows.add(pgKey{c.script, c.mode, c.clients}, c.target, r)
}

// sbResults: the sysbench rows, keyed by test.
type sbResults struct {
	rows[string]
	targets []string
}

func (s *sbResults) add(c sbCase, r result) { s.rows.add(c.test, c.target, r) }

// median is the run of rs with the median TPS among those that worked
// (the lower middle one of an even count), its note listing every round's
// TPS; with one run, that run; when none worked, the last.
func median(rs []result) result {
	var ok []result
	for _, r := range rs {
		if r.ok() {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return rs[len(rs)-1]
	}
	if len(rs) == 1 {
		return rs[0]
	}
	sorted := slices.Clone(ok)
	slices.SortStableFunc(sorted, func(a, b result) int { return cmp.Compare(a.TPS, b.TPS) })
	m := sorted[(len(sorted)-1)/2]
	tps := make([]string, len(rs))
	for i, r := range rs {
		tps[i] = "failed"
		if r.ok() {
			tps[i] = fmtTPS(r.TPS)
		}
	}
	note := fmt.Sprintf("median of %d rounds (TPS %s)", len(rs), strings.Join(tps, ", "))
	if m.Note != "" {
		note += "; " + m.Note
	}
	m.Note = note
	return m
}

func fmtTPS(v float64) string { return fmt.Sprintf("%.0f", v) }

func fmtMS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "—"
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// ratio formats a/b of two results' values, or "—" when either has none.
func ratio(a, b result, v func(result) float64) string {
	if !a.ok() || !b.ok() || v(b) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", v(a)/v(b))
}

func tps(r result) float64 { return r.TPS }

// fmtCPU is the proxy-CPU cell: empty for direct runs and when unknown.
func fmtCPU(r result) string {
	if !r.ok() || r.CPUPerTxn <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", r.CPUPerTxn)
}
func p99(r result) float64 { return r.P99 }

// cells returns the TPS, p50 and p99 cells of r: numbers, or the reason
// there are none in the TPS cell.
func cells(r result) (string, string, string) {
	switch {
	case r.NA != "":
		return r.NA, "—", "—"
	case r.Failed != "":
		return "**failed**: " + mdEscape(r.Failed), "—", "—"
	}
	return fmtTPS(r.TPS), fmtMS(r.P50), fmtMS(r.P99)
}

// mdEscape keeps a message on one table row.
func mdEscape(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// pgTable renders one row per target per load, with the ratios on the
// proxies' rows.
func (p *pgResults) table() string {
	var b strings.Builder
	b.WriteString("| script | protocol | clients | target | TPS | p50 ms | p99 ms | TPS ÷ direct | p99 ÷ direct | TPS ÷ PgBouncer | p99 ÷ PgBouncer | proxy CPU µs/txn | CPU ÷ PgBouncer | load |\n")
	b.WriteString("|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, k := range p.keys {
		rs := p.row(k)
		for _, t := range p.targets {
			r, ok := rs[t]
			if !ok {
				continue
			}
			tp, p50, p99c := cells(r)
			vsDirectTPS, vsDirectP99, vsBouncerTPS, vsBouncerP99 := "", "", "", ""
			if d, ok := rs[targetDirect]; ok && t != targetDirect {
				vsDirectTPS, vsDirectP99 = ratio(r, d, tps), ratio(r, d, p99)
			}
			cpu, vsBouncerCPU := fmtCPU(r), ""
			if pb, ok := rs[targetPgBouncer]; ok && t == targetSwitchyard {
				vsBouncerTPS, vsBouncerP99 = ratio(r, pb, tps), ratio(r, pb, p99)
				if r.CPUPerTxn > 0 && pb.CPUPerTxn > 0 {
					vsBouncerCPU = fmt.Sprintf("%.2f", r.CPUPerTxn/pb.CPUPerTxn)
				}
			}
			load := ""
			if r.NA == "" {
				load = fmt.Sprintf("%.1f", r.Load)
			}
			name := t
			if t == targetSwitchyard {
				name = "**switchyard**"
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				k.script, k.mode, k.clients, name, tp, p50, p99c, vsDirectTPS, vsDirectP99, vsBouncerTPS, vsBouncerP99, cpu, vsBouncerCPU, load)
		}
	}
	var notes []string
	for _, k := range p.keys {
		rs := p.row(k)
		for _, t := range p.targets {
			if r, ok := rs[t]; ok && r.Note != "" {
				notes = append(notes, fmt.Sprintf("- %s %s, %d clients, %s: %s", k.script, k.mode, k.clients, t, mdEscape(r.Note)))
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}

// summary gives, per script and protocol, the geometric mean over client
// counts of Switchyard's TPS ratios, and how many loads it covers.
func (p *pgResults) summary() string {
	type group struct{ script, mode string }
	var order []group
	type acc struct {
		logD, logB float64
		nD, nB, n  int
	}
	accs := map[group]*acc{}
	for _, k := range p.keys {
		g := group{k.script, k.mode}
		a := accs[g]
		if a == nil {
			a = &acc{}
			accs[g] = a
			order = append(order, g)
		}
		a.n++
		rs := p.row(k)
		sy, ok := rs[targetSwitchyard]
		if !ok || !sy.ok() {
			continue
		}
		if d, ok := rs[targetDirect]; ok && d.ok() && d.TPS > 0 {
			a.logD += math.Log(sy.TPS / d.TPS)
			a.nD++
		}
		if pb, ok := rs[targetPgBouncer]; ok && pb.ok() && pb.TPS > 0 {
			a.logB += math.Log(sy.TPS / pb.TPS)
			a.nB++
		}
	}
	gm := func(sum float64, n, of int) string {
		if n == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f (%d of %d loads)", math.Exp(sum/float64(n)), n, of)
	}
	var b strings.Builder
	b.WriteString("| script | protocol | Switchyard TPS ÷ direct | Switchyard TPS ÷ PgBouncer |\n|---|---|--:|--:|\n")
	for _, g := range order {
		a := accs[g]
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", g.script, g.mode, gm(a.logD, a.nD, a.n), gm(a.logB, a.nB, a.n))
	}
	return b.String()
}

func (s *sbResults) table(threads int) string {
	var b strings.Builder
	b.WriteString("| test | threads | target | TPS | p50 ms | p99 ms | TPS ÷ direct | p99 ÷ direct | proxy CPU µs/txn | load |\n")
	b.WriteString("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, test := range s.keys {
		rs := s.row(test)
		for _, t := range s.targets {
			r, ok := rs[t]
			if !ok {
				continue
			}
			tp, p50, p99c := cells(r)
			vsTPS, vsP99 := "", ""
			if d, ok := rs[targetDirect]; ok && t != targetDirect {
				vsTPS, vsP99 = ratio(r, d, tps), ratio(r, d, p99)
			}
			name := t
			if t == targetSwitchyard {
				name = "**switchyard**"
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %.1f |\n", test, threads, name, tp, p50, p99c, vsTPS, vsP99, fmtCPU(r), r.Load)
		}
	}
	var notes []string
	for _, test := range s.keys {
		rs := s.row(test)
		for _, t := range s.targets {
			if r, ok := rs[t]; ok && r.Note != "" {
				notes = append(notes, fmt.Sprintf("- %s, %s: %s", test, t, mdEscape(r.Note)))
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(notes, "\n") + "\n")
	}
	return b.String()
}
