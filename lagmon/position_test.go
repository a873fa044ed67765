package lagmon

import (
	"strings"
	"testing"
)

func TestParseLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want LSN
		out  string
	}{
		{"16/B374D848", 0x16_B374D848, "16/B374D848"},
		{"0/0", 0, "0/0"},
		{"0/1", 1, "0/1"},
		{"1/0", 1 << 32, "1/0"},
		{"16/0374D848", 0x16_0374D848, "16/374D848"}, // PostgreSQL 18 pads
		{"16/00000001", 0x16_00000001, "16/1"},
		{"ab/cdef0123", 0xAB_CDEF0123, "AB/CDEF0123"},
		{"FFFFFFFF/FFFFFFFF", ^LSN(0), "FFFFFFFF/FFFFFFFF"},
	} {
		got, err := ParseLSN(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x", tc.in, uint64(got), err, uint64(tc.want))
			continue
		}
		if s := got.String(); s != tc.out {
			t.Errorf("LSN(%#x).String() = %q, want %q", uint64(got), s, tc.out)
		}
		if back, err := ParseLSN(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q: %v, %v", tc.in, back, err)
		}
	}
	for _, bad := range []string{"", "16", "/1", "1/", "1/2/3", "123456789/0", "0/123456789", "g/0", "-1/0", "+1/0", "0x1/0", " 1/0", "1 /0"} {
		if got, err := ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) = %v, want an error", bad, got)
		}
	}
}

func TestLSNAtLeast(t *testing.T) {
	a, b := LSN(0x1_00000000), LSN(0x1_00000001)
	if !b.AtLeast(a) || a.AtLeast(b) || !a.AtLeast(a) {
		t.Error("LSN order wrong")
	}
	if a.AtLeast(nil) {
		t.Error("LSN.AtLeast(nil) = true")
	}
	if a.AtLeast(mustMaria(t, "")) || mustMaria(t, "").AtLeast(a) {
		t.Error("LSN and GTID compared true")
	}
}

func mustMaria(t testing.TB, s string) GTIDSet {
	t.Helper()
	g, err := ParseMariaDBGTID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustMySQL(t testing.TB, s string) GTIDSet {
	t.Helper()
	g, err := ParseMySQLGTID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestParseMariaDBGTID(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"0-1-100,1-2-5", "0-1-100,1-2-5"},
		{"1-2-5,0-1-100", "0-1-100,1-2-5"},
		{"", ""},
		{"  ", ""},
		{" 0-1-5 , 3-1-7\n", "0-1-5,3-1-7"},
		{"0-1-5,0-2-7,0-3-6", "0-2-7"}, // @@gtid_binlog_state: highest seq per domain
		{"4294967295-4294967295-18446744073709551615", "4294967295-4294967295-18446744073709551615"},
	} {
		g, err := ParseMariaDBGTID(tc.in)
		if err != nil {
			t.Errorf("ParseMariaDBGTID(%q): %v", tc.in, err)
			continue
		}
		if g.String() != tc.out {
			t.Errorf("ParseMariaDBGTID(%q).String() = %q, want %q", tc.in, g.String(), tc.out)
		}
		if back := mustMaria(t, g.String()); !samePosition(back, g) {
			t.Errorf("round trip of %q changed it", tc.in)
		}
	}
	for _, bad := range []string{"0-1", "0", "a-1-2", "0-1-2,", ",0-1-2", "0-1-2,,1-1-1", "0-1-2-3", "0--1-2", "-1-1-2", "4294967296-1-1", "0-1-x"} {
		if g, err := ParseMariaDBGTID(bad); err == nil {
			t.Errorf("ParseMariaDBGTID(%q) = %v, want an error", bad, g)
		}
	}
}

func TestMariaDBAtLeast(t *testing.T) {
	for _, tc := range []struct {
		p, q string
		want bool
	}{
		{"0-1-100", "0-1-100", true},
		{"0-1-101", "0-1-100", true},
		{"0-1-99", "0-1-100", false},
		{"0-2-100", "0-1-100", true}, // server id does not matter
		{"0-1-100,1-2-5", "0-1-100,1-2-5", true},
		{"0-1-100,1-2-5", "0-1-50", true},            // extra domain in p
		{"0-1-100,1-2-5", "1-2-5", true},             // q lacks a domain p has
		{"0-1-100", "0-1-100,1-2-5", false},          // domain missing in p
		{"0-1-100,1-2-4", "0-1-100,1-2-5", false},    // behind in one domain
		{"0-1-100,1-2-6", "0-1-101,1-2-5", false},    // ahead in one, behind in other
		{"0-1-100,2-1-1,5-1-9", "2-1-1,5-1-9", true}, // sparse domains
		{"0-1-100,5-1-9", "2-1-1,5-1-9", false},
		{"0-1-1", "", true},
		{"", "", true},
		{"", "0-1-1", false},
	} {
		p, q := mustMaria(t, tc.p), mustMaria(t, tc.q)
		if got := p.AtLeast(q); got != tc.want {
			t.Errorf("%q.AtLeast(%q) = %v, want %v", tc.p, tc.q, got, tc.want)
		}
	}
	m := mustMaria(t, "0-1-1")
	if m.AtLeast(mustMySQL(t, "")) || mustMySQL(t, "").AtLeast(mustMaria(t, "")) {
		t.Error("MariaDB and MySQL sets compared true")
	}
	if m.AtLeast(nil) || m.AtLeast(LSN(0)) || m.AtLeast(GTIDSet{}) || (GTIDSet{}).AtLeast(GTIDSet{}) {
		t.Error("compared true with nil, an LSN or the zero GTIDSet")
	}
}

const (
	uuidA = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	uuidB = "4e11fa47-71ca-11e1-9e33-c80aa9429562"
)

func TestParseMySQLGTID(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{uuidA + ":1-100:200", uuidA + ":1-100:200"},
		{strings.ToUpper(uuidA) + ":1-5", uuidA + ":1-5"},
		{"", ""},
		{uuidB + ":1-5,\n" + uuidA + ":1-3", uuidA + ":1-3," + uuidB + ":1-5"}, // @@gtid_executed style
		{uuidA + ":1-5:6-10:20", uuidA + ":1-10:20"},
		{uuidA + ":20:1-5:3-8", uuidA + ":1-8:20"},
		{uuidA + ":1-3," + uuidA + ":4-5", uuidA + ":1-5"},
		{uuidA + ":7:7:7", uuidA + ":7"},
		{uuidA + ":1-5:Blue:1-3:red:9", uuidA + ":1-5:blue:1-3:red:9"},
		{uuidA + ":red:9," + uuidA + ":1-2", uuidA + ":1-2:red:9"},
	} {
		g, err := ParseMySQLGTID(tc.in)
		if err != nil {
			t.Errorf("ParseMySQLGTID(%q): %v", tc.in, err)
			continue
		}
		if g.String() != tc.out {
			t.Errorf("ParseMySQLGTID(%q).String() = %q, want %q", tc.in, g.String(), tc.out)
		}
		if back := mustMySQL(t, g.String()); !samePosition(back, g) {
			t.Errorf("round trip of %q changed it", tc.in)
		}
	}
	for _, bad := range []string{
		"3e11fa47", uuidA, uuidA + ":", uuidA + ":0", uuidA + ":0-5", uuidA + ":5-3", uuidA + ":a-b",
		uuidA + ":1,", "," + uuidA + ":1", uuidA + ":1-", uuidA + ":-1", uuidA + ":tag",
		uuidA + ":tag:other:1", uuidA + ":1:9tag:1", "3e11fa47-71ca-11e1-9e33_c80aa9429562:1",
		"3e11fa47-71ca-11e1-9e33-c80aa942956g:1", uuidA + ":1:2x", uuidA + ":1-5:12-11",
	} {
		if g, err := ParseMySQLGTID(bad); err == nil {
			t.Errorf("ParseMySQLGTID(%q) = %v, want an error", bad, g)
		}
	}
}

func TestMySQLAtLeast(t *testing.T) {
	a, b := uuidA, uuidB
	for _, tc := range []struct {
		p, q string
		want bool
	}{
		{a + ":1-100", a + ":1-100", true},
		{a + ":1-100", a + ":1-99", true},
		{a + ":1-100", a + ":1-101", false},
		{a + ":1-100:200", a + ":1-100", true},
		{a + ":1-100:200", a + ":200", true},
		{a + ":1-100:200", a + ":150", false}, // in the gap
		{a + ":1-100:200", a + ":100-200", false},
		{a + ":1-100:200", a + ":5:50-60:200", true},
		{a + ":1-10:20-30", a + ":1-10:21", true},
		{a + ":1-10:20-30", a + ":11", false},
		{a + ":1-10:20-30", a + ":25-31", false},
		{a + ":1-100", a + ":1-100," + b + ":1", false}, // source missing in p
		{a + ":1-100," + b + ":1-5", b + ":3", true},
		{a + ":1-100," + b + ":1-5", a + ":100," + b + ":5", true},
		{a + ":1-100," + b + ":1-4", a + ":100," + b + ":5", false},
		{a + ":1-5:x:1-3", a + ":x:2", true},
		{a + ":1-5:x:1-3", a + ":4", true},
		{a + ":1-5", a + ":x:1", false}, // tagged transactions are their own
		{a + ":x:1-5", a + ":1", false},
		{a + ":1", "", true},
		{"", "", true},
		{"", a + ":1", false},
	} {
		p, q := mustMySQL(t, tc.p), mustMySQL(t, tc.q)
		if got := p.AtLeast(q); got != tc.want {
			t.Errorf("%q.AtLeast(%q) = %v, want %v", tc.p, tc.q, got, tc.want)
		}
	}
}

func BenchmarkAtLeast(b *testing.B) {
	lsn := LSN(0x16_B374D848)
	var q Position = LSN(0x16_B374D000)
	maria, mq := mustMaria(b, "0-1-100,1-2-5,2-3-9"), Position(mustMaria(b, "0-1-99,2-3-9"))
	my, myq := mustMySQL(b, uuidA+":1-1000:1002-2000,"+uuidB+":1-5"), Position(mustMySQL(b, uuidA+":1500,"+uuidB+":5"))
	b.Run("LSN", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !lsn.AtLeast(q) {
				b.Fatal()
			}
		}
	})
	b.Run("MariaDB", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !maria.AtLeast(mq) {
				b.Fatal()
			}
		}
	})
	b.Run("MySQL", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !my.AtLeast(myq) {
				b.Fatal()
			}
		}
	})
}
