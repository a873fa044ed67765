package lagmon

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// GTIDSet is a MariaDB or a MySQL GTID position. The two are different
// kinds: a set parsed by ParseMariaDBGTID never compares true with one
// parsed by ParseMySQLGTID, and the zero GTIDSet is of neither kind.
//
// MariaDB ("0-1-100,1-2-5", as in @@gtid_binlog_pos and @@gtid_slave_pos)
// keeps one sequence number per replication domain; the server id does not
// take part in comparisons, because sequence numbers grow within a domain
// whichever server wrote them. MySQL ("uuid:1-100:200,uuid2:1-5", as in
// @@gtid_executed, with MySQL 8.4 tags "uuid:tag:1-5" too) is a set of
// transaction numbers per source, gaps included.
type GTIDSet struct {
	kind  gtidKind
	maria []mariaGTID // sorted by domain, one per domain
	mysql []sidSet    // sorted by (uuid, tag), one per pair
	text  string      // canonical form, made once by the parser
}

var _ Position = GTIDSet{}

type gtidKind uint8

const (
	kindNone gtidKind = iota
	kindMariaDB
	kindMySQL
)

type mariaGTID struct {
	domain, server uint32
	seq            uint64
}

// sidSet is the transactions of one source (and tag) in a MySQL GTID set.
type sidSet struct {
	uuid, tag string
	iv        []interval // sorted, merged, not adjacent
}

// interval is the transaction numbers lo..hi, both included.
type interval struct{ lo, hi uint64 }

// ParseMariaDBGTID parses a MariaDB GTID position: comma separated
// domain-server-sequence triples, "0-1-100,1-2-5". The empty string is the
// empty position (a server that has written nothing yet). When a domain
// appears more than once (as in @@gtid_binlog_state, which keeps one entry
// per domain and server), the highest sequence number counts.
func ParseMariaDBGTID(s string) (GTIDSet, error) {
	g := GTIDSet{kind: kindMariaDB}
	for elem := range strings.SplitSeq(s, ",") {
		elem = strings.TrimSpace(elem)
		if elem == "" {
			if strings.TrimSpace(s) == "" {
				break
			}
			return GTIDSet{}, fmt.Errorf("lagmon: invalid MariaDB GTID position %q: empty element", s)
		}
		d, rest, ok1 := strings.Cut(elem, "-")
		sv, sq, ok2 := strings.Cut(rest, "-")
		domain, err1 := strconv.ParseUint(d, 10, 32)
		server, err2 := strconv.ParseUint(sv, 10, 32)
		seq, err3 := strconv.ParseUint(sq, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil {
			return GTIDSet{}, fmt.Errorf("lagmon: invalid MariaDB GTID %q in %q: want domain-server-sequence like 0-1-100", elem, s)
		}
		g.maria = append(g.maria, mariaGTID{uint32(domain), uint32(server), seq})
	}
	slices.SortFunc(g.maria, func(a, b mariaGTID) int {
		return cmp.Or(cmp.Compare(a.domain, b.domain), cmp.Compare(b.seq, a.seq))
	})
	// Keep the highest sequence number of each domain (sorted first).
	g.maria = slices.CompactFunc(g.maria, func(a, b mariaGTID) bool { return a.domain == b.domain })
	var sb strings.Builder
	for i, e := range g.maria {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%d-%d-%d", e.domain, e.server, e.seq)
	}
	g.text = sb.String()
	return g, nil
}

// ParseMySQLGTID parses a MySQL GTID set: comma separated sources, each a
// UUID followed by colon separated transaction numbers or ranges,
// "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-100:200,uuid2:1-5"; MySQL 8.4
// tags ("uuid:1-5:mytag:1-3") apply to the ranges after them. Whitespace
// around elements (@@gtid_executed puts a newline after each comma) is
// ignored; UUIDs and tags are compared case-insensitively. The empty string
// is the empty set.
func ParseMySQLGTID(s string) (GTIDSet, error) {
	g := GTIDSet{kind: kindMySQL}
	bad := func(elem, why string) (GTIDSet, error) {
		return GTIDSet{}, fmt.Errorf("lagmon: invalid MySQL GTID set %q at %q: %s", s, elem, why)
	}
	for elem := range strings.SplitSeq(s, ",") {
		elem = strings.TrimSpace(elem)
		if elem == "" {
			if strings.TrimSpace(s) == "" {
				break
			}
			return bad(elem, "empty element")
		}
		parts := strings.Split(elem, ":")
		uuid := strings.ToLower(strings.TrimSpace(parts[0]))
		if !isUUID(uuid) {
			return bad(elem, "want a UUID like 3e11fa47-71ca-11e1-9e33-c80aa9429562")
		}
		if len(parts) < 2 {
			return bad(elem, "no transaction numbers after the UUID")
		}
		tag, tagged := "", false
		for _, p := range parts[1:] {
			p = strings.TrimSpace(p)
			if p != "" && (p[0] < '0' || p[0] > '9') {
				if tagged {
					return bad(elem, "tag "+tag+" has no transaction numbers")
				}
				tag, tagged = strings.ToLower(p), true
				if !isTag(tag) {
					return bad(elem, "invalid tag "+p)
				}
				continue
			}
			tagged = false
			lo, hi, isRange := strings.Cut(p, "-")
			l, err1 := strconv.ParseUint(lo, 10, 63)
			h, err2 := l, error(nil)
			if isRange {
				h, err2 = strconv.ParseUint(hi, 10, 63)
			}
			if err1 != nil || err2 != nil || l == 0 || h < l {
				return bad(elem, "want transaction numbers n or n-m with 1 <= n <= m")
			}
			g.addInterval(uuid, tag, interval{l, h})
		}
		if tagged {
			return bad(elem, "tag "+tag+" has no transaction numbers")
		}
	}
	slices.SortFunc(g.mysql, func(a, b sidSet) int {
		return cmp.Or(strings.Compare(a.uuid, b.uuid), strings.Compare(a.tag, b.tag))
	})
	var sb strings.Builder
	for i, ss := range g.mysql {
		ss.iv = mergeIntervals(ss.iv)
		g.mysql[i] = ss
		switch {
		case i == 0:
			sb.WriteString(ss.uuid)
		case g.mysql[i-1].uuid != ss.uuid:
			sb.WriteByte(',')
			sb.WriteString(ss.uuid)
		}
		if ss.tag != "" {
			sb.WriteByte(':')
			sb.WriteString(ss.tag)
		}
		for _, iv := range ss.iv {
			sb.WriteByte(':')
			sb.WriteString(strconv.FormatUint(iv.lo, 10))
			if iv.hi != iv.lo {
				sb.WriteByte('-')
				sb.WriteString(strconv.FormatUint(iv.hi, 10))
			}
		}
	}
	g.text = sb.String()
	return g, nil
}

func (g *GTIDSet) addInterval(uuid, tag string, iv interval) {
	for i := range g.mysql {
		if g.mysql[i].uuid == uuid && g.mysql[i].tag == tag {
			g.mysql[i].iv = append(g.mysql[i].iv, iv)
			return
		}
	}
	g.mysql = append(g.mysql, sidSet{uuid: uuid, tag: tag, iv: []interval{iv}})
}

// mergeIntervals sorts ivs and joins overlapping and adjacent ones
// (1-5:6-9 is 1-9), so that containment is a simple walk.
func mergeIntervals(ivs []interval) []interval {
	slices.SortFunc(ivs, func(a, b interval) int { return cmp.Compare(a.lo, b.lo) })
	out := ivs[:1]
	for _, iv := range ivs[1:] {
		last := &out[len(out)-1]
		if iv.lo <= last.hi+1 {
			last.hi = max(last.hi, iv.hi)
			continue
		}
		out = append(out, iv)
	}
	return slices.Clip(out)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// isTag checks a (lowercased) MySQL GTID tag: a letter or underscore, then
// up to 31 letters, digits or underscores.
func isTag(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// AtLeast reports whether g includes everything of q. MariaDB: for every
// domain of q, g has that domain with a sequence number at least q's (a
// domain q has and g lacks means g is behind). MySQL: every transaction of
// q is in g.
func (g GTIDSet) AtLeast(q Position) bool {
	o, ok := q.(GTIDSet)
	if !ok || o.kind != g.kind {
		return false
	}
	switch g.kind {
	case kindMariaDB:
		i := 0
		for _, want := range o.maria {
			for i < len(g.maria) && g.maria[i].domain < want.domain {
				i++
			}
			if i == len(g.maria) || g.maria[i].domain != want.domain || g.maria[i].seq < want.seq {
				return false
			}
		}
		return true
	case kindMySQL:
		i := 0
		for _, want := range o.mysql {
			for i < len(g.mysql) && (g.mysql[i].uuid < want.uuid || g.mysql[i].uuid == want.uuid && g.mysql[i].tag < want.tag) {
				i++
			}
			if i == len(g.mysql) || g.mysql[i].uuid != want.uuid || g.mysql[i].tag != want.tag || !covers(g.mysql[i].iv, want.iv) {
				return false
			}
		}
		return true
	}
	return false
}

// covers reports whether every number in want is in have (both merged).
func covers(have, want []interval) bool {
	j := 0
	for _, w := range want {
		for j < len(have) && have[j].hi < w.lo {
			j++
		}
		// have is merged, so w must lie inside the one interval that
		// reaches w.lo.
		if j == len(have) || have[j].lo > w.lo || have[j].hi < w.hi {
			return false
		}
	}
	return true
}

// String returns the canonical form: domains in order for MariaDB; sources
// in order, lowercased, with merged ranges for MySQL.
func (g GTIDSet) String() string { return g.text }

// MariaDB reports whether g is a MariaDB GTID position (not a MySQL GTID
// set), so a position handed over as text can be read in the same flavor.
func (g GTIDSet) MariaDB() bool { return g.kind == kindMariaDB }
