-- The audit log as a rowid table. As a WITHOUT ROWID table (a B-tree keyed by the primary key),
-- every entry larger than about 1 000 bytes (a tenth of the 4 KiB page's share for index B-trees)
-- spilled its tail into an overflow page of its own: an order's entry (~1.2 KB of changes) used a
-- whole extra page, two thirds of the log's file space was empty and every audited write wrote that
-- page. A rowid table keeps entries up to ~4 KB inline; the `(tenant_id, seq)` key stays unique
-- through its index. Same columns in the same order, same entries, same secondary indexes.
CREATE TABLE audit_log_rowid (
    tenant_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at INTEGER NOT NULL,
    user_id BLOB NOT NULL,
    origin_client TEXT,
    origin_address TEXT,
    origin_location TEXT,
    operation TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id BLOB NOT NULL,
    version INTEGER NOT NULL,
    changes TEXT NOT NULL,
    comment TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (tenant_id, seq)
);
INSERT INTO audit_log_rowid
SELECT tenant_id, seq, at, user_id, origin_client, origin_address, origin_location, operation,
       kind, record_id, version, changes, comment, prev_hash, hash
FROM audit_log ORDER BY tenant_id, seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_rowid RENAME TO audit_log;
CREATE INDEX ix_audit_record ON audit_log (tenant_id, kind, record_id, seq);
CREATE INDEX ix_audit_user ON audit_log (tenant_id, user_id, at);
