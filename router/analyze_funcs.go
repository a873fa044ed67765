package router

// Built-in functions a read may call and still run on a replica. The lists
// are deliberately modest: the common aggregates, window functions and
// scalar functions of everyday queries, none of which writes or depends on
// which server answers. A built-in missing here only sends a query to the
// primary ("function x()" in the reason); operators add it to
// read_only_functions. Volatile is fine (random(), now()): the question is
// "does it write or need this session's state", not "is it stable".
//
// Functions that do have side effects or need the primary (sequences,
// advisory and named locks, session setters, LAST_INSERT_ID) are special
// cases in the dialect files and must never appear here.

var pgReadOnlyFuncs = makeSet(
	// aggregates
	"count", "sum", "avg", "min", "max", "array_agg", "string_agg",
	"bool_and", "bool_or", "every", "bit_and", "bit_or",
	"json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
	"stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp",
	"percentile_cont", "percentile_disc", "mode",
	// window functions
	"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile",
	"lag", "lead", "first_value", "last_value", "nth_value",
	// date and time
	"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
	"timeofday", "date_trunc", "date_part", "extract", "age", "date_bin",
	"to_char", "to_date", "to_timestamp", "to_number", "make_date", "make_time",
	"make_timestamp", "make_timestamptz", "make_interval", "justify_days",
	"justify_hours", "justify_interval", "isfinite", "timezone", "overlaps",
	// strings (including what the grammar rewrites TRIM, POSITION,
	// SUBSTRING, OVERLAY, LIKE ... ESCAPE, SIMILAR TO, COLLATION FOR into)
	"lower", "upper", "initcap", "length", "char_length", "character_length",
	"octet_length", "bit_length", "substr", "substring", "position", "strpos",
	"btrim", "ltrim", "rtrim", "lpad", "rpad", "left", "right", "repeat",
	"replace", "reverse", "split_part", "concat", "concat_ws", "format",
	"translate", "overlay", "quote_ident", "quote_literal", "quote_nullable",
	"md5", "sha256", "encode", "decode", "ascii", "chr", "starts_with",
	"regexp_replace", "regexp_match", "regexp_matches", "regexp_split_to_array",
	"regexp_split_to_table", "regexp_like", "regexp_count", "regexp_substr",
	"like_escape", "similar_to_escape", "pg_collation_for", "normalize",
	"is_normalized", "string_to_array", "array_to_string", "to_hex",
	// numbers
	"abs", "ceil", "ceiling", "floor", "round", "trunc", "mod", "power",
	"sqrt", "exp", "ln", "log", "sign", "div", "random", "width_bucket",
	"gen_random_uuid",
	// json
	"to_json", "to_jsonb", "row_to_json", "json_build_object",
	"jsonb_build_object", "json_build_array", "jsonb_build_array",
	"json_object", "jsonb_object", "json_array_length", "jsonb_array_length",
	"json_array_elements", "jsonb_array_elements", "json_array_elements_text",
	"jsonb_array_elements_text", "json_each", "jsonb_each", "json_each_text",
	"jsonb_each_text", "json_extract_path", "jsonb_extract_path",
	"json_extract_path_text", "jsonb_extract_path_text", "json_typeof",
	"jsonb_typeof", "json_object_keys", "jsonb_object_keys", "jsonb_set",
	"jsonb_insert", "json_strip_nulls", "jsonb_strip_nulls", "jsonb_pretty",
	"jsonb_path_query", "jsonb_path_exists",
	// arrays and set-returning
	"array_length", "array_upper", "array_lower", "array_position",
	"array_positions", "array_append", "array_prepend", "array_cat",
	"array_remove", "array_replace", "cardinality", "unnest",
	"generate_series", "generate_subscripts",
	// system information that is the same question on any node
	"version", "current_database", "current_schema", "current_schemas",
	"current_setting", "system_user", "inet_server_addr", "inet_server_port",
	"pg_is_in_recovery", "pg_sleep", "pg_typeof",
)

var mysqlReadOnlyFuncs = makeSet(
	// control flow and NULL handling
	"coalesce", "ifnull", "if", "nullif", "isnull", "greatest", "least",
	// strings
	"concat", "concat_ws", "lower", "upper", "lcase", "ucase", "length",
	"char_length", "character_length", "octet_length", "substring_index",
	"left", "right", "lpad", "rpad", "ltrim", "rtrim", "replace", "reverse",
	"repeat", "space", "instr", "field", "find_in_set", "elt", "format",
	"hex", "unhex", "md5", "sha1", "sha2", "crc32", "ascii", "ord", "quote",
	"bin", "oct", "conv", "strcmp", "soundex",
	// numbers
	"abs", "ceil", "ceiling", "floor", "round", "truncate", "mod", "pow",
	"power", "sqrt", "exp", "ln", "log", "log10", "log2", "sign", "rand",
	// date and time
	"now", "sysdate", "curdate", "curtime", "utc_timestamp", "utc_date",
	"utc_time", "current_date", "current_time", "current_timestamp",
	"localtime", "localtimestamp",
	"unix_timestamp", "from_unixtime", "date", "time", "year", "month", "day",
	"dayofmonth", "dayofweek", "dayofyear", "hour", "minute", "second", "week",
	"weekday", "yearweek", "monthname", "dayname", "last_day", "datediff",
	"timediff", "date_format", "time_format", "str_to_date", "makedate",
	"maketime", "addtime", "subtime", "to_days", "from_days", "convert_tz",
	"adddate", "subdate", "date_add", "date_sub",
	// identifiers and misc
	"uuid", "uuid_short", "uuid_to_bin", "bin_to_uuid", "inet_aton",
	"inet_ntoa", "inet6_aton", "inet6_ntoa", "database", "schema", "version",
	"user", "current_user", "session_user", "system_user",
	"charset", "collation", "coercibility", "sleep", "benchmark",
	"json_length", "json_depth", "json_type", "json_valid",
)

func makeSet(names ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(names))
	for _, n := range names {
		m[n] = struct{}{}
	}
	return m
}
