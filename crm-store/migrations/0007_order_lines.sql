-- Order lines as rows: one row per line of every order that has an order instant, keyed by tenant,
-- order instant, order and line position, so the period reports (profit by segment × product) read
-- one key range of lines instead of looking up every order of the period by its key and parsing its
-- `lines` JSON. Each row repeats the order columns that record scopes and period filters test, under
-- their names in `orders` (`id` is the order's id), so an order query's condition compiles unchanged
-- against this table. The line values are the text the JSON holds (decimals stay exact; the library
-- parses them); a missing description is '' and a missing discount '0', as the JSON readers assume.
-- Orders without an order instant are left out (a key column cannot be NULL): aggregates that do not
-- bound `ordered_at` read the orders themselves. Lines that are not valid JSON are left out too
-- (the library writes them with a JSON encoder; a hand-edited row must not stop the migration).
CREATE TABLE order_lines (
    tenant_id TEXT NOT NULL,
    ordered_at INTEGER NOT NULL,
    id BLOB NOT NULL,
    line_no INTEGER NOT NULL,
    owner_id BLOB NOT NULL,
    deleted_at INTEGER,
    status TEXT,
    account_id BLOB,
    currency TEXT,
    product_id TEXT,
    description TEXT NOT NULL,
    quantity TEXT,
    unit_price TEXT,
    discount_percent TEXT NOT NULL,
    unit_cost TEXT,
    PRIMARY KEY (tenant_id, ordered_at, id, line_no)
) WITHOUT ROWID;

-- Kept in step with `orders` by triggers, so every write path (facade writes, merges, imports,
-- restores, purges) changes both in the same transaction and a rolled-back write leaves neither.
CREATE TRIGGER order_lines_after_insert AFTER INSERT ON orders
WHEN new.ordered_at IS NOT NULL AND json_valid(new.lines)
BEGIN
    INSERT INTO order_lines (
        tenant_id, ordered_at, id, line_no, owner_id, deleted_at, status, account_id, currency,
        product_id, description, quantity, unit_price, discount_percent, unit_cost
    )
    SELECT new.tenant_id, new.ordered_at, new.id, l.key, new.owner_id, new.deleted_at, new.status,
           new.account_id, new.currency,
           json_extract(l.value, '$.product_id'),
           coalesce(json_extract(l.value, '$.description'), ''),
           CAST(json_extract(l.value, '$.quantity') AS TEXT),
           CAST(json_extract(l.value, '$.unit_price') AS TEXT),
           CAST(coalesce(json_extract(l.value, '$.discount_percent'), '0') AS TEXT),
           CAST(json_extract(l.value, '$.unit_cost') AS TEXT)
    FROM json_each(new.lines) AS l;
END;

-- A new order instant or new lines move or rewrite the order's lines.
CREATE TRIGGER order_lines_after_update_lines AFTER UPDATE ON orders
WHEN old.ordered_at IS NOT new.ordered_at OR old.lines IS NOT new.lines
  OR old.tenant_id IS NOT new.tenant_id OR old.id IS NOT new.id
BEGIN
    DELETE FROM order_lines
    WHERE tenant_id = old.tenant_id AND ordered_at = old.ordered_at AND id = old.id;
    INSERT INTO order_lines (
        tenant_id, ordered_at, id, line_no, owner_id, deleted_at, status, account_id, currency,
        product_id, description, quantity, unit_price, discount_percent, unit_cost
    )
    SELECT new.tenant_id, new.ordered_at, new.id, l.key, new.owner_id, new.deleted_at, new.status,
           new.account_id, new.currency,
           json_extract(l.value, '$.product_id'),
           coalesce(json_extract(l.value, '$.description'), ''),
           CAST(json_extract(l.value, '$.quantity') AS TEXT),
           CAST(json_extract(l.value, '$.unit_price') AS TEXT),
           CAST(coalesce(json_extract(l.value, '$.discount_percent'), '0') AS TEXT),
           CAST(json_extract(l.value, '$.unit_cost') AS TEXT)
    FROM json_each(CASE WHEN json_valid(new.lines) THEN new.lines END) AS l
    WHERE new.ordered_at IS NOT NULL;
END;

-- Any other copied column (a status change, a soft delete or restore, a new owner or account) is
-- set on the order's lines in place; an update of other fields (a number, a total) writes no line.
CREATE TRIGGER order_lines_after_update_order AFTER UPDATE ON orders
WHEN NOT (old.ordered_at IS NOT new.ordered_at OR old.lines IS NOT new.lines
          OR old.tenant_id IS NOT new.tenant_id OR old.id IS NOT new.id)
  AND (old.owner_id IS NOT new.owner_id OR old.deleted_at IS NOT new.deleted_at
       OR old.status IS NOT new.status OR old.account_id IS NOT new.account_id
       OR old.currency IS NOT new.currency)
BEGIN
    UPDATE order_lines
    SET owner_id = new.owner_id, deleted_at = new.deleted_at, status = new.status,
        account_id = new.account_id, currency = new.currency
    WHERE tenant_id = new.tenant_id AND ordered_at = new.ordered_at AND id = new.id;
END;

CREATE TRIGGER order_lines_after_delete AFTER DELETE ON orders
BEGIN
    DELETE FROM order_lines
    WHERE tenant_id = old.tenant_id AND ordered_at = old.ordered_at AND id = old.id;
END;

-- The lines of the orders already stored, appended in key order.
INSERT INTO order_lines (
    tenant_id, ordered_at, id, line_no, owner_id, deleted_at, status, account_id, currency,
    product_id, description, quantity, unit_price, discount_percent, unit_cost
)
SELECT o.tenant_id, o.ordered_at, o.id, l.key, o.owner_id, o.deleted_at, o.status, o.account_id,
       o.currency,
       json_extract(l.value, '$.product_id'),
       coalesce(json_extract(l.value, '$.description'), ''),
       CAST(json_extract(l.value, '$.quantity') AS TEXT),
       CAST(json_extract(l.value, '$.unit_price') AS TEXT),
       CAST(coalesce(json_extract(l.value, '$.discount_percent'), '0') AS TEXT),
       CAST(json_extract(l.value, '$.unit_cost') AS TEXT)
FROM orders AS o, json_each(CASE WHEN json_valid(o.lines) THEN o.lines END) AS l
WHERE o.ordered_at IS NOT NULL
ORDER BY o.tenant_id, o.ordered_at, o.id, l.key;

-- Planner statistics until an ANALYZE of the table: a tenant holds many lines, an order instant
-- about one order's (two lines), the line position one.
INSERT INTO sqlite_stat1 (tbl, idx, stat)
VALUES ('order_lines', 'order_lines', '1000000 100000 2 2 1');
ANALYZE sqlite_schema;
