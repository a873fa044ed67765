package scatter

// Shards is a wire package's side of a scatter: what needs its protocol's
// bytes or its server connections. Run decides everything else.
type Shards interface {
	// Run sends the request, its statement text being sql (the client's,
	// or Request.Unoffset's rewrite of it), to shard i on a lease of its
	// own and reads the whole answer, charging every row to b before it
	// keeps it. Past the budget it returns b's *Error (the connection
	// whose answer was cut off must not be reused). Its own error (a lost
	// server connection, a pool timeout) ends the scatter; a shard's error
	// is an Answer that Failed.
	Run(i int, sql string, b *Budget) (*Answer, error)
	// Codec is the row format of a read's result, as the first shard's
	// answer describes it.
	Codec(first *Answer) (Codec, error)
	// Lookup runs the catalog query q (text protocol) on shard i and
	// returns the values of its one row, nil when it answered otherwise.
	Lookup(i int, q string) ([][]byte, error)
}

// Request is one statement to run on several shards.
type Request struct {
	Job
	SQL string // the statement's text
	// Spec says how a read's rows merge (router's ShardKeys.MergeSpec);
	// nil for a write.
	Spec *Spec
	// LimitParam and OffsetParam are the paging given as bind parameters
	// (1-based; 0: none); ReadParam reads one (nil: the request carries
	// no parameters). See Spec.BindPaging.
	LimitParam, OffsetParam int
	ReadParam               func(n int) (int64, error)
	// Unoffset rewrites the statement so that each shard returns the rows
	// a literal OFFSET skips (router.PostgresScatterLimit,
	// router.MySQLScatterLimit); ok false when it cannot.
	Unoffset func(sql string) (string, bool)
}

// Result is the answer to a Request.
type Result struct {
	// Answers are the shards' answers in the order they ran; the first
	// describes a read's columns (or is not a result set: Columns < 0).
	Answers []*Answer
	// Rows are a read's rows merged, or a write's (RETURNING) rows shard
	// after shard.
	Rows [][]byte
	// Affected is a write's count summed over the shards, when Counted.
	Affected int64
	Counted  bool
	// Failed is the answer of the shard whose own error stopped the
	// scatter, to relay as it is; nil if none did.
	Failed *Answer
	// Partial says where an all-shard write committed before it failed
	// (PartialWrite); "" when it failed on the first shard or not at all.
	Partial string
}

// Run runs r on its shards through sh, one shard after the other under
// one Budget (Gather), and merges a read's rows as r.Spec says: paging
// bound, a literal OFFSET folded into each shard's LIMIT, the collation
// of compared text looked up (TextOrders). An error is a refusal (an
// *Error, counted in the refusal metric) or sh's own; with it, the
// Result says what ran before it (Partial).
func Run(r Request, sh Shards) (*Result, error) {
	if len(r.Shards) == 0 {
		return nil, mergeError("no shard to run the statement on")
	}
	sql := r.SQL
	if !r.Write {
		err := r.Spec.BindPaging(r.LimitParam, r.OffsetParam, r.ReadParam)
		if err == nil && r.Spec.Offset != 0 {
			var ok bool
			if r.Unoffset != nil {
				sql, ok = r.Unoffset(sql)
			}
			if !ok {
				err = mergeError("the OFFSET of this SELECT run on several shards cannot be folded into its LIMIT")
			}
		}
		if err != nil {
			(&Gathered{job: r.Job}).refused(err, false)
			return nil, err
		}
	}
	g, err := Gather(r.Job, func(i int, b *Budget) (*Answer, error) { return sh.Run(i, sql, b) })
	res := &Result{Answers: g.Answers}
	if k := g.Failed(); err != nil || k >= 0 {
		if k >= 0 {
			res.Failed = g.Answers[k]
		} else {
			k = len(g.Answers)
		}
		if r.Write && k > 0 {
			res.Partial = PartialWrite(r.Shards, k)
		}
		return res, err
	}
	if r.Write {
		res.Rows, res.Affected, res.Counted = g.Rows, g.Affected, g.Counted
		return res, nil
	}
	if g.Answers[0].Columns < 0 {
		return res, nil // not a result set: the wire package answers as the first shard did
	}
	c, err := sh.Codec(g.Answers[0])
	if err == nil {
		c, err = textOrders(r, sh, c)
	}
	if err != nil {
		g.refused(err, false)
		return res, err
	}
	res.Rows, err = g.Merge(r.Spec, c)
	return res, err
}
