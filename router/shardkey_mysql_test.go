package router

import "testing"

// myKeyCases: MySQL statements and the key (and merge) verdicts they must
// get. ? placeholders are numbered in text order.
var myKeyCases = []keyCase{
	// WHERE key = value.
	{"SELECT * FROM orders WHERE customer_id = 42", "select orders [42]", "ok"},
	{"SELECT * FROM orders WHERE customer_id = ?", "select orders [$1]", ""},
	{"SELECT * FROM orders WHERE status = ? AND customer_id = ?", "select orders [$2]", ""},
	{"SELECT * FROM orders o WHERE o.customer_id = ?", "select orders [$1]", ""},
	{"SELECT * FROM orders WHERE orders.customer_id = 'abc'", `select orders ["abc"]`, ""},
	{"SELECT * FROM shop.orders WHERE customer_id = 1", "select orders [1]", ""},
	{"SELECT * FROM `orders` WHERE `customer_id` = 1", "select orders [1]", ""},
	{"SELECT * FROM orders WHERE 42 = customer_id", "select orders [42]", ""},
	{"SELECT * FROM orders WHERE ? = customer_id", "select orders [$1]", ""},
	{"SELECT * FROM orders WHERE customer_id = -5", "select orders [-5]", ""},
	{"SELECT * FROM orders WHERE customer_id = 5000000000", "select orders [5000000000]", ""},
	{"SELECT * FROM orders WHERE customer_id = 18446744073709551615", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id = 1.5", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id = 0x2a", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id = \"dq\"", `select orders ["dq"]`, ""},
	{"SELECT * FROM orders WHERE customer_id = _utf8mb4'abc'", `select orders ["abc"]`, ""},
	{"SELECT * FROM orders WHERE customer_id = 'it''s'", `select orders ["it's"]`, ""},
	{"SELECT * FROM orders WHERE customer_id <=> 3", "select orders [3]", ""},
	{"SELECT * FROM orders WHERE customer_id = NULL", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id IS NULL", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id = other_id", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id = ? + 1", "select orders none", ""},
	{"SELECT * FROM orders WHERE CUSTOMER_ID = 1", "select orders [1]", ""},
	{"SELECT * FROM Orders O WHERE o.Customer_Id = 1", "select Orders [1]", ""},
	// AND, OR, NOT.
	{"SELECT * FROM orders WHERE status = 'x' AND (total > 5 AND customer_id = 7)", "select orders [7]", ""},
	{"SELECT * FROM orders WHERE customer_id = 7 OR status = 'x'", "select orders none", "ok"},
	{"SELECT * FROM orders WHERE customer_id = 7 OR customer_id = ?", "select orders [7 $1]", ""},
	{"SELECT * FROM orders WHERE (customer_id = 1 AND a = 2) OR (customer_id = 3 AND b = 4)", "select orders [1 3]", ""},
	{"SELECT * FROM orders WHERE customer_id IN (1, 2) AND customer_id = ?", "select orders [$1]", ""},
	{"SELECT * FROM orders WHERE NOT customer_id = 1", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id != 1", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id = 1 XOR customer_id = 2", "select orders none", ""},
	// IN.
	{"SELECT * FROM orders WHERE customer_id IN (1, 2, 3)", "select orders [1 2 3]", "ok"},
	{"SELECT * FROM orders WHERE customer_id IN (?, ?)", "select orders [$1 $2]", ""},
	{"SELECT * FROM orders WHERE a = ? AND customer_id IN (?, -2, 'x')", `select orders [$2 -2 "x"]`, ""},
	{"SELECT * FROM orders WHERE customer_id IN (1, NOW())", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id NOT IN (1, 2)", "select orders none", ""},
	{"SELECT * FROM orders WHERE customer_id IN (SELECT id FROM customers)", "select orders none", ""},
	// Per-table keys.
	{"SELECT * FROM customers WHERE id = 9", "select customers [9]", ""},
	{"SELECT * FROM customers WHERE customer_id = 9", "select customers none", ""},
	{"SELECT * FROM public.accounts WHERE account_no = 3", "select accounts [3]", ""},
	{"SELECT * FROM accounts WHERE account_no = 3", "select accounts none", ""},
	// Joins.
	{"SELECT * FROM orders o JOIN customers c ON o.customer_id = c.id WHERE c.id = 5", "select orders [5]", ""},
	{"SELECT * FROM orders o JOIN items i ON i.order_id = o.id WHERE o.customer_id = ?", "select orders [$1]", ""},
	{"SELECT * FROM orders o LEFT JOIN customers c ON c.id = o.customer_id AND c.id = 5", "select orders none", "ok"},
	{"SELECT * FROM orders o STRAIGHT_JOIN customers c ON c.id = o.customer_id AND c.id = 5", "select orders [5]", ""},
	{"SELECT * FROM orders, customers c WHERE orders.customer_id = c.id AND c.id = ?", "select orders [$1]", ""},
	{"SELECT * FROM orders JOIN items USING (customer_id) WHERE items.customer_id = 4", "select orders [4]", ""},
	{"SELECT * FROM (orders o, customers c) WHERE o.customer_id = c.id AND c.id = 6", "select orders [6]", ""},
	// No table, locks, unions.
	{"SELECT 1", "select - none", "ok"},
	{"SELECT 1 FROM DUAL", "select - none", ""},
	{"SELECT NOW()", "select - none", ""},
	{"SELECT * FROM orders WHERE customer_id = 1 FOR UPDATE", "select orders [1]", ""},
	{"SELECT * FROM orders WHERE customer_id = 1 LOCK IN SHARE MODE", "select orders [1]", ""},
	{"SELECT * FROM orders WHERE customer_id = 1 UNION SELECT * FROM orders WHERE customer_id = 1", "select orders none", "no: UNION"},
	// INSERT and REPLACE.
	{"INSERT INTO orders (id, customer_id, total) VALUES (1, 42, 9.5)", "insert orders rows[42]", ""},
	{"INSERT INTO orders (customer_id, id) VALUES (?, ?), (?, ?)", "insert orders rows[$1 $3]", ""},
	{"INSERT INTO orders (id, customer_id) VALUES (?, 1), (?, 'x'), (?, ?)", `insert orders rows[1 "x" $4]`, ""},
	{"INSERT INTO orders SET customer_id = 5, total = ?", "insert orders rows[5]", ""},
	{"INSERT INTO orders (customer_id) VALUE (8)", "insert orders rows[8]", ""},
	{"REPLACE INTO orders (customer_id, id) VALUES (3, 1)", "insert orders rows[3]", ""},
	{"INSERT IGNORE INTO orders (customer_id) VALUES (3)", "insert orders rows[3]", ""},
	{"INSERT INTO orders VALUES (1, 2, 3)", "insert orders none", ""},
	{"INSERT INTO orders (customer_id) SELECT id FROM customers", "insert orders none", ""},
	{"INSERT INTO orders (customer_id, id) VALUES (LAST_INSERT_ID(), 1)", "insert orders none", ""},
	{"INSERT INTO orders (customer_id, id) VALUES (1, 1), (DEFAULT, 2)", "insert orders none", ""},
	{"INSERT INTO orders (id, total) VALUES (1, 2)", "insert orders none", ""},
	{"INSERT INTO orders (customer_id, id) VALUES (1, 2) ON DUPLICATE KEY UPDATE customer_id = VALUES(customer_id)", "insert orders rows[1] setskey", ""},
	{"INSERT INTO orders (customer_id, id) VALUES (1, 2) ON DUPLICATE KEY UPDATE total = 0", "insert orders rows[1]", ""},
	{"INSERT INTO customers (id, name) VALUES (7, 'x')", "insert customers rows[7]", ""},
	{"INSERT INTO `Customers` (ID) VALUES (7)", "insert Customers rows[7]", ""},
	// UPDATE.
	{"UPDATE orders SET total = ? WHERE customer_id = ?", "update orders [$2]", ""},
	{"UPDATE orders SET customer_id = 5 WHERE customer_id = 4", "update orders [4] setskey", ""},
	{"UPDATE orders o SET o.customer_id = 5 WHERE o.customer_id = 4", "update orders [4] setskey", ""},
	{"UPDATE orders SET total = 0", "update orders none", ""},
	{"UPDATE orders SET total = 0 WHERE id = 1 LIMIT 1", "update orders none", ""},
	{"UPDATE orders o JOIN customers c ON c.id = o.customer_id SET o.total = 1 WHERE c.id = 5", "update orders [5]", ""},
	{"UPDATE orders, customers c SET orders.total = 1 WHERE c.id = 5", "update orders none", ""},
	// A joined sharded table's key set: rows of customers would move.
	{"UPDATE orders o JOIN customers c ON c.id = o.customer_id SET c.id = 4 WHERE o.customer_id = 5", "update orders [5] setskey", ""},
	{"UPDATE orders o JOIN customers c ON c.id = o.customer_id SET id = 4 WHERE o.customer_id = 5", "update orders [5] setskey", ""},
	// := is not in the parser's grammar: a parse error, refused on a
	// sharded database rather than run on one shard.
	{"UPDATE orders SET customer_id := 4 WHERE customer_id = 3", "other - none parse", ""},
	// DELETE.
	{"DELETE FROM orders WHERE customer_id IN (?, ?)", "delete orders [$1 $2]", ""},
	{"DELETE FROM orders", "delete orders none", ""},
	{"DELETE FROM orders WHERE customer_id = 3 ORDER BY id LIMIT 10", "delete orders [3]", ""},
	{"DELETE o FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = 3", "delete orders [3]", ""},
	{"DELETE o, c FROM orders o JOIN customers c ON o.customer_id = c.id WHERE c.id = 3", "delete orders none", ""},
	// Hints.
	{"/* switchyard:shard_key=42 */ SELECT COUNT(*) FROM orders", "select orders none hint=42", "ok aggs=[count@0]"},
	{"SELECT * FROM orders WHERE customer_id = 2 /* switchyard:shard_key='a' */", `select orders [2] hint="a"`, ""},
	{"/* switchyard:shard=1 */ DELETE FROM orders", "delete orders none shard=1", ""},
	{"# switchyard:shard_key=7\nUPDATE orders SET x = 1", "update orders none hint=7", ""},
	{"SELECT '/* switchyard:shard=1 */' FROM orders", "select orders none", ""},
	{"SELECT \"/* switchyard:shard=1 */\"", "select - none", ""},
	// Not DML, several statements, bad text.
	{"BEGIN", "other - none", ""},
	{"SET NAMES utf8mb4", "other - none", ""},
	{"SHOW TABLES", "other - none", ""},
	{"CREATE TABLE t (id int)", "other - none", ""},
	{"SELECT 1; SELECT 2", "other - none multi", ""},
	{"SELECT * FROM orders WHERE customer_id = 1;", "select orders [1]", ""},
	{"", "other - none", ""},
	{"SELEKT 1", "other - none parse", ""},
	// MariaDB's own executable comments, which the server runs and the
	// parser took for plain comments: a key the server does not use.
	{"SELECT count(*) FROM orders WHERE customer_id = 3 /*M! or 1=1 */", "other - none parse", ""},
	{"SELECT count(*) FROM orders WHERE customer_id = 3 /*!100000 or 1=1 */", "other - none parse", ""},
	{"SELECT count(*) /*M! , sum(total) */ FROM orders", "other - none parse", ""},
	{"SELECT count(*) FROM orders WHERE customer_id = 3 /*!50000 AND 1=1 */", "select orders [3]", ""},
	{"SELECT 'unterminated", "other - none parse", ""},
}

var myMergeCases = []keyCase{
	{"SELECT id, total FROM orders ORDER BY total DESC LIMIT 10", "select orders none", "ok order=[1:total desc] limit=10"},
	{"SELECT * FROM orders ORDER BY created_at LIMIT 10, 5", "select orders none", "ok order=[-1:created_at asc nf] limit=5 offset=10"},
	{"SELECT id FROM orders LIMIT 5 OFFSET 10", "select orders none", "ok limit=5 offset=10"},
	{"SELECT id FROM orders LIMIT ?, ?", "select orders none", "ok limit=$2 offset=$1"},
	{"SELECT id FROM orders WHERE a = ? LIMIT ?", "select orders none", "ok limit=$2"},
	{"SELECT id, total FROM orders ORDER BY 2 DESC, id", "select orders none", "ok order=[1:total desc, 0:id asc nf]"},
	{"SELECT id AS x FROM orders ORDER BY x", "select orders none", "ok order=[0:x asc nf]"},
	{"SELECT o.id FROM orders o ORDER BY o.id DESC", "select orders none", "ok order=[0:id desc]"},
	{"SELECT COUNT(*) FROM orders", "select orders none", "ok aggs=[count@0]"},
	{"SELECT COUNT(id), SUM(total), MIN(x), MAX(y) FROM orders WHERE status = 'x'", "select orders none", "ok aggs=[count@0 sum@1 min@2 max@3]"},
	{"SELECT COUNT(*) FROM orders WHERE customer_id IN (1, 2)", "select orders [1 2]", "ok aggs=[count@0]"},
	{"SELECT * FROM orders WHERE customer_id IN (1, 2) ORDER BY id", "select orders [1 2]", "ok order=[-1:id asc nf]"},
	{"SELECT AVG(total) FROM orders", "select orders none", "no: aggregate AVG()"},
	{"SELECT GROUP_CONCAT(name) FROM orders", "select orders none", "no: aggregate GROUP_CONCAT()"},
	{"SELECT COUNT(DISTINCT customer_id) FROM orders", "select orders none", "no: COUNT(DISTINCT)"},
	{"SELECT SUM(total) + 1 FROM orders", "select orders none", "no: an aggregate inside an expression"},
	{"SELECT id, COUNT(*) FROM orders", "select orders none", "no: aggregates next to plain columns without GROUP BY"},
	{"SELECT status, COUNT(*) FROM orders GROUP BY status", "select orders none", "no: GROUP BY"},
	{"SELECT DISTINCT status FROM orders", "select orders none", "no: DISTINCT"},
	{"SELECT MAX(total) AS m FROM orders HAVING m > 1", "select orders none", "no: HAVING"},
	{"SELECT id, ROW_NUMBER() OVER () FROM orders", "select orders none", "no: a window function"},
	{"SELECT SUM(total) OVER (PARTITION BY status) FROM orders", "select orders none", "no: a window function"},
	{"SELECT id FROM orders ORDER BY total", "select orders none", "no: ORDER BY a column that is not in the select list"},
	{"SELECT id FROM orders ORDER BY LOWER(name)", "select orders none", "no: ORDER BY an expression"},
	{"SELECT * FROM orders o JOIN items i ON i.order_id = o.id", "select orders none", "no: a join that is not on the shard keys of the joined tables"},
	{"SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id", "select orders none", "ok"},
	{"SELECT * FROM orders WHERE id IN (SELECT order_id FROM items)", "select orders none", "no: a subquery"},
	{"SELECT * FROM (SELECT * FROM orders) s", "select orders none", "no: a subquery in FROM"},
	{"WITH x AS (SELECT * FROM orders) SELECT * FROM x", "select orders none", "no: WITH (a common table expression)"},
	{"SELECT SQL_CALC_FOUND_ROWS * FROM orders LIMIT 10", "select orders none", "no: SQL_CALC_FOUND_ROWS"},
}

func TestShardKeysMySQL(t *testing.T) {
	if n := len(myKeyCases) + len(myMergeCases); n < 40 {
		t.Fatalf("only %d cases", n)
	}
	runKeyCases(t, MySQL, myKeyCases)
	runKeyCases(t, MySQL, myMergeCases)
}
