package router

import (
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// PostgresScatterLimit rewrites the outermost OFFSET of a PostgreSQL
// SELECT, when it is a literal, out of the statement and into its row
// count: "LIMIT 5 OFFSET 10" becomes "LIMIT 15", "OFFSET 10 ROWS FETCH
// FIRST 5 ROWS ONLY" becomes "FETCH FIRST 15 ROWS ONLY", a lone
// "OFFSET 10" goes. A SELECT run on several shards must ask each for the
// rows the offset skips, which are known only after the merge (see
// MySQLScatterLimit). The rest of the text is left as it is. ok is false
// when there is no such clause or the text is not understood.
func PostgresScatterLimit(sql string) (string, bool) {
	res, err := pg.Scan(sql)
	if err != nil {
		return sql, false
	}
	toks := res.Tokens
	depth := 0
	offStart, offEnd := -1, -1 // the OFFSET clause to cut
	var off int64
	countAt := -1 // the token of the row count
	var count int64
	num := func(i int) (int64, bool) {
		if i >= len(toks) || toks[i].Token != pg.Token_ICONST {
			return 0, false
		}
		n, err := strconv.ParseInt(sql[toks[i].Start:toks[i].End], 10, 64)
		return n, err == nil && n >= 0 && n < 1<<62 // count+offset cannot overflow
	}
	for i := 0; i < len(toks); i++ {
		switch toks[i].Token {
		case pg.Token_ASCII_40: // (
			depth++
			continue
		case pg.Token_ASCII_41: // )
			depth--
			continue
		}
		if depth != 0 {
			continue
		}
		switch toks[i].Token {
		case pg.Token_OFFSET:
			n, ok := num(i + 1)
			if !ok || offStart >= 0 {
				return sql, false
			}
			off, offStart, offEnd = n, int(toks[i].Start), int(toks[i+1].End)
			i++
			if i+1 < len(toks) && (toks[i+1].Token == pg.Token_ROW || toks[i+1].Token == pg.Token_ROWS) {
				i++
				offEnd = int(toks[i].End)
			}
		case pg.Token_LIMIT:
			if i+1 < len(toks) && toks[i+1].Token == pg.Token_ALL {
				continue
			}
			n, ok := num(i + 1)
			if !ok || countAt >= 0 {
				return sql, false
			}
			count, countAt = n, i+1
		case pg.Token_FETCH:
			// FETCH FIRST|NEXT n ROW|ROWS ONLY; without n, or WITH TIES,
			// it is not rewritten.
			n, ok := num(i + 2)
			if !ok || countAt >= 0 || i+4 >= len(toks) || toks[i+4].Token != pg.Token_ONLY {
				return sql, false
			}
			count, countAt = n, i+2
		}
	}
	if offStart < 0 {
		return sql, false
	}
	cut := func(s string, from, to int) string { return s[:from] + s[to:] }
	if countAt < 0 {
		return cut(sql, offStart, offEnd), true
	}
	cs, ce := int(toks[countAt].Start), int(toks[countAt].End)
	n := strconv.FormatInt(count+off, 10)
	if cs > offStart {
		return cut(sql[:cs]+n+sql[ce:], offStart, offEnd), true
	}
	return sql[:cs] + n + cut(sql[ce:], offStart-ce, offEnd-ce), true
}
