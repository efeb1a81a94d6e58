-- The order statistics of every account in one narrow index: RFM and other aggregates over the whole
-- customer base read this index alone (the measures, the columns the record scopes test, and the
-- primary key every index carries) instead of every wide account row. It replaces the index on the
-- last order instant, which it extends (same name, same leading key: the `days_since_last_order`
-- filters and pages by last order keep their range reads), so an order write still updates one
-- account index, not two.
CREATE TABLE temp.kept_stat AS
SELECT stat FROM sqlite_stat1 WHERE tbl = 'accounts' AND idx = 'ix_accounts_last_order';
DROP INDEX ix_accounts_last_order;
-- `id` right after the last order keeps pages sorted by last order free of a sort.
CREATE INDEX ix_accounts_last_order ON accounts (
    tenant_id, last_order_at, id, order_count, lifetime_value, lifetime_value_currency,
    first_order_at, other_currency_orders, deleted_at, owner_id, territory_id
);
-- The statistics of the index it replaces (measured or seeded), until the next ANALYZE.
INSERT INTO sqlite_stat1 (tbl, idx, stat)
VALUES ('accounts', 'ix_accounts_last_order',
        coalesce((SELECT stat FROM temp.kept_stat), '1000000 100000 10'));
DROP TABLE temp.kept_stat;
ANALYZE sqlite_schema;
