//! The migration SQL and the static schema cannot drift apart.

// Test code: helpers outside #[test] functions may unwrap and panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crm_core::{EntityKind, FieldType};
use std::collections::HashMap;

use crm_store::SqliteStore;

fn sql_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Int
        | FieldType::Decimal
        | FieldType::Money
        | FieldType::Timestamp
        | FieldType::Bool => "INTEGER",
        FieldType::Reference { .. } | FieldType::AnyReference => "BLOB",
        _ => "TEXT",
    }
}

/// Prints table DDL generated from the schema (used once to write `0001_init.sql`).
#[test]
#[ignore]
fn print_ddl() {
    for k in EntityKind::ALL {
        let mut s = format!(
            "CREATE TABLE {} (\n    tenant_id TEXT NOT NULL,\n    id BLOB NOT NULL,\n    owner_id BLOB NOT NULL,\n    created_at INTEGER NOT NULL,\n    created_by BLOB NOT NULL,\n    updated_at INTEGER NOT NULL,\n    updated_by BLOB NOT NULL,\n    version INTEGER NOT NULL,\n    deleted_at INTEGER,\n    custom TEXT,\n",
            k.table()
        );
        for f in &k.schema().fields {
            s.push_str(&format!("    {} {},\n", f.name, sql_type(&f.ty)));
            if f.ty == FieldType::Money {
                s.push_str(&format!("    {}_currency TEXT,\n", f.name));
            }
        }
        s.push_str("    PRIMARY KEY (tenant_id, id)\n) WITHOUT ROWID;\n");
        s.push_str(&format!(
            "CREATE INDEX ix_{0}_owner ON {0} (tenant_id, owner_id);\nCREATE INDEX ix_{0}_updated ON {0} (tenant_id, updated_at);\n",
            k.table()
        ));
        for f in &k.schema().fields {
            if f.unique {
                s.push_str(&format!(
                    "CREATE UNIQUE INDEX ux_{0}_{1} ON {0} (tenant_id, {1}) WHERE deleted_at IS NULL;\n",
                    k.table(),
                    f.name
                ));
            }
        }
        println!("{s}");
    }
}

#[test]
fn every_schema_field_has_its_columns() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("schema.db");
    let store = SqliteStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    for k in EntityKind::ALL {
        let mut st = conn
            .prepare(&format!("PRAGMA table_info({})", k.table()))
            .unwrap();
        let table: HashMap<String, String> = st
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!table.is_empty(), "no table {}", k.table());
        let want_meta = [
            ("tenant_id", "TEXT"),
            ("id", "BLOB"),
            ("owner_id", "BLOB"),
            ("created_at", "INTEGER"),
            ("created_by", "BLOB"),
            ("updated_at", "INTEGER"),
            ("updated_by", "BLOB"),
            ("version", "INTEGER"),
            ("deleted_at", "INTEGER"),
            ("custom", "TEXT"),
        ];
        let mut expected = want_meta.len();
        for (c, t) in want_meta {
            assert_eq!(
                table.get(c).map(String::as_str),
                Some(t),
                "{}.{c}",
                k.table()
            );
        }
        for f in &k.schema().fields {
            expected += 1;
            assert_eq!(
                table.get(f.name).map(String::as_str),
                Some(sql_type(&f.ty)),
                "{}.{}",
                k.table(),
                f.name
            );
            if f.ty == FieldType::Money {
                expected += 1;
                let c = format!("{}_currency", f.name);
                assert_eq!(
                    table.get(&c).map(String::as_str),
                    Some("TEXT"),
                    "{}.{c}",
                    k.table()
                );
            }
        }
        assert_eq!(table.len(), expected, "{} has extra columns", k.table());
    }
    drop(store);
    let _ = std::fs::remove_file(&path);
}

/// `order_lines` (migration 7) repeats the order columns that order queries test under their names
/// in `orders`, so such a query's condition compiles unchanged against it: same names, same
/// declared types. Its own line columns are no order column.
#[test]
fn order_lines_repeat_order_columns_with_their_types() {
    let path_dir = tempfile::tempdir().unwrap();
    let path = path_dir.path().join("order-lines-schema.db");
    let store = SqliteStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let columns = |table: &str| -> HashMap<String, String> {
        let mut st = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap();
        st.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (orders, lines) = (columns("orders"), columns("order_lines"));
    let shared = [
        "tenant_id",
        "id",
        "owner_id",
        "deleted_at",
        "ordered_at",
        "status",
        "account_id",
        "currency",
    ];
    for c in shared {
        assert_eq!(lines.get(c), orders.get(c), "order_lines.{c}");
        assert!(lines.contains_key(c), "order_lines has no {c}");
    }
    let mut own: Vec<&str> = lines
        .keys()
        .map(String::as_str)
        .filter(|c| !shared.contains(c))
        .collect();
    own.sort_unstable();
    assert_eq!(
        own,
        [
            "description",
            "discount_percent",
            "line_no",
            "product_id",
            "quantity",
            "unit_cost",
            "unit_price"
        ]
    );
    for c in own {
        assert!(!orders.contains_key(c), "orders.{c} would be shadowed");
    }
    drop(conn);
    drop(store);
    let _ = std::fs::remove_file(&path);
}
