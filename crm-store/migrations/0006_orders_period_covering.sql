-- Period reports over orders (the supervision KPIs: orders and net revenue per owner in a period)
-- read a date range of a tenant's orders. With `ix_orders_ordered` holding only the order instant,
-- every order of the period was then fetched by its key from the wide order rows (~1 ms per 150
-- orders). The index is rebuilt to also hold what those reads test and return — the owner (record
-- scopes), the account (territory scopes), status and deletion (filters), the totals (net revenue)
-- — so a period read is one range of this index. It keeps its name and leading key: range reads by
-- date keep their plans, and an order write still updates one date index, not two.
CREATE TABLE temp.kept_stat AS
SELECT stat FROM sqlite_stat1 WHERE tbl = 'orders' AND idx = 'ix_orders_ordered';
DROP INDEX ix_orders_ordered;
CREATE INDEX ix_orders_ordered ON orders (
    tenant_id, ordered_at, owner_id, account_id, status, deleted_at,
    total, total_currency, tax_total, tax_total_currency
);
-- The statistics of the index it replaces (measured or seeded), until the next ANALYZE.
INSERT INTO sqlite_stat1 (tbl, idx, stat)
VALUES ('orders', 'ix_orders_ordered',
        coalesce((SELECT stat FROM temp.kept_stat), '1000000 100000 1'));
DROP TABLE temp.kept_stat;
ANALYZE sqlite_schema;
