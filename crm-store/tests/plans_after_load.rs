//! Query plans after a bulk load, once the store has replaced the seeded statistics with real ones:
//! lookups on sparse columns (most contacts have no mobile number) must still use their index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use crm_core::backend::{Column, Cond, Op, Query, Store};
use crm_core::chrono::{TimeZone, Utc};
use crm_core::{EntityKind, FieldType, Record, RecordId, RecordMeta, TenantId, Value};
use crm_store::SqliteStore;

#[test]
fn sparse_phone_columns_keep_their_index_after_statistics_are_refreshed() {
    let dir = std::env::temp_dir().join(format!("crm-plans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("plans.db")).unwrap();
    let tenant = TenantId::new("t").unwrap();
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let user = RecordId::new_at(at);
    let mut tx = store.write().unwrap();
    for i in 0..3_000 {
        let mut fields = crm_core::Fields::new();
        fields.insert("last_name".into(), Value::Text(format!("N{i}")));
        fields.insert(
            "phone".into(),
            Value::Text(format!("+3902{:08}", 10_000_000 + i)),
        );
        let r = Record {
            meta: RecordMeta {
                kind: EntityKind::Contact,
                id: RecordId::new_at(at),
                tenant: tenant.clone(),
                owner_id: user,
                created_at: at,
                created_by: user,
                updated_at: at,
                updated_by: user,
                version: 1,
                deleted_at: None,
            },
            fields,
            custom: Default::default(),
        };
        tx.insert(&r).unwrap();
    }
    tx.commit().unwrap();
    for col in ["mobile", "phone"] {
        let column = Column::Builtin {
            name: if col == "mobile" { "mobile" } else { "phone" },
            ty: FieldType::Phone,
        };
        let mut q = Query::all(EntityKind::Contact, tenant.clone()).and(Cond::Compare(
            column.clone(),
            Op::Eq,
            Value::Text("+390210000007".into()),
        ));
        q.sort = Some((column, false));
        q.limit = Some(1001);
        let plan = store.explain(&q).unwrap().join(" | ");
        assert!(
            plan.contains(&format!("ix_contacts_{col}")),
            "{col}: {plan}"
        );
        assert!(
            !plan.contains("SCAN") && !plan.contains("PRIMARY KEY"),
            "{col}: {plan}"
        );
    }
}
