-- Orders by date: the period reports (profit by segment × product, KPIs, windowed RFM) read one
-- date range of a tenant's orders instead of all of them.
CREATE INDEX ix_orders_ordered ON orders (tenant_id, ordered_at);
-- Planner statistics until the next ANALYZE of the table: order instants are nearly unique, like
-- ids, so the index narrows like the primary key (measured statistics when the table has them,
-- else the seeded figures of the first migration).
INSERT INTO sqlite_stat1 (tbl, idx, stat)
VALUES ('orders', 'ix_orders_ordered',
        coalesce((SELECT stat FROM sqlite_stat1 WHERE tbl = 'orders' AND idx = 'orders'),
                 '1000000 100000 1'));
