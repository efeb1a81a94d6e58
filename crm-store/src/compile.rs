//! Compiles a resolved [`Query`] into one SQL statement with bound parameters only. Identifiers come
//! from the static schema, [`MetaColumn::name`] or validated custom field keys, never from values.

use crm_core::{
    Column, Cond, CrmError, EntityKind, FieldType, Keyset, Liveness, MetaColumn, Op, Query,
    RecordId, Result, Value,
};
use rusqlite::types::Value as Sql;
use serde_json::Value as Json;

use crate::codec::{custom_json, encode_column, field_columns, ts_to_int, valid_key};

/// A statement and its parameters.
pub(crate) struct Stmt {
    pub(crate) sql: String,
    pub(crate) params: Vec<Sql>,
}

/// The meta columns read for every record, in this order, before the field columns.
pub(crate) const META_SELECT: &str =
    "id, owner_id, created_at, created_by, updated_at, updated_by, version, deleted_at, custom";

/// The field columns of a kind, in schema order (money: amount then currency).
pub(crate) fn field_cols(kind: EntityKind) -> Vec<String> {
    kind.schema()
        .fields
        .iter()
        .flat_map(|f| field_columns(f.name, &f.ty))
        .collect()
}

/// `SELECT` list for a kind: every field, or only `only` (in schema order).
pub(crate) fn select_list(kind: EntityKind, only: Option<&[&str]>) -> String {
    let mut s = META_SELECT.to_owned();
    for f in &kind.schema().fields {
        if only.is_some_and(|o| !o.contains(&f.name)) {
            continue;
        }
        for c in field_columns(f.name, &f.ty) {
            s.push_str(", ");
            s.push_str(&c);
        }
    }
    s
}

/// A column as SQL: its expression, the currency expression for money, its type, whether custom.
struct Expr {
    sql: String,
    ccy: Option<String>,
    ty: FieldType,
    custom: bool,
    /// For list columns: the `json_each` argument list.
    each: String,
}

fn bad_key() -> CrmError {
    CrmError::invalid_query(None, "custom_key", "a custom field key is malformed")
}

fn expr(kind: EntityKind, col: &Column) -> Result<Expr> {
    match col {
        Column::Meta(m) => Ok(Expr {
            sql: m.name().to_owned(),
            ccy: None,
            ty: m.ty(),
            custom: false,
            each: m.name().to_owned(),
        }),
        Column::Builtin { name, ty } => {
            let spec = kind.schema().field(name).ok_or_else(|| {
                CrmError::invalid_query(Some(name), "unknown_field", "no such field")
            })?;
            Ok(Expr {
                sql: spec.name.to_owned(),
                ccy: matches!(ty, FieldType::Money).then(|| format!("{}_currency", spec.name)),
                ty: ty.clone(),
                custom: false,
                each: spec.name.to_owned(),
            })
        }
        Column::Custom { key, ty } => {
            if !valid_key(key) {
                return Err(bad_key());
            }
            Ok(Expr {
                sql: format!("json_extract(custom, '$.{key}')"),
                ccy: matches!(ty, FieldType::Money)
                    .then(|| format!("json_extract(custom, '$.{key}__ccy')")),
                ty: ty.clone(),
                custom: true,
                each: format!("custom, '$.{key}'"),
            })
        }
    }
}

fn json_param(j: Json) -> Sql {
    match j {
        Json::String(s) => Sql::Text(s),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Sql::Integer(i),
            None => Sql::Text(n.to_string()),
        },
        Json::Bool(b) => Sql::Integer(i64::from(b)),
        Json::Null => Sql::Null,
        other => Sql::Text(other.to_string()),
    }
}

/// The parameter (and currency parameter for money) a value compares as in this column.
fn param(e: &Expr, v: &Value) -> Result<(Sql, Option<Sql>)> {
    let ccy = match v {
        Value::Money(m) => Some(Sql::Text(m.currency.code().to_owned())),
        _ => None,
    };
    if e.custom {
        let j = custom_json(v, "value")?.unwrap_or(Json::Null);
        return Ok((json_param(j), ccy));
    }
    let mut enc = encode_column(&e.ty, v, "value")
        .map_err(|err| CrmError::invalid_query(None, "type", err.message))?
        .into_iter();
    let first = enc.next().unwrap_or(Sql::Null);
    Ok((first, enc.next().or(ccy)))
}

/// A list element as stored in list columns (ids as hyphenated text).
fn list_elem(v: &Value) -> Sql {
    match v {
        Value::Ref(id) => Sql::Text(id.to_string()),
        Value::Text(s) => Sql::Text(s.clone()),
        other => json_param(other.to_json()),
    }
}

struct Compiler {
    kind: EntityKind,
    tenant: String,
    params: Vec<Sql>,
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn op_sql(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

impl Compiler {
    fn ids(&mut self, ids: &[RecordId]) -> String {
        for id in ids {
            self.params.push(Sql::Blob(id.as_bytes().to_vec()));
        }
        placeholders(ids.len())
    }

    fn cond(&mut self, c: &Cond) -> Result<String> {
        Ok(match c {
            Cond::True => "1".to_owned(),
            Cond::False => "0".to_owned(),
            Cond::And(v) | Cond::Or(v) if v.is_empty() => {
                if matches!(c, Cond::And(_)) { "1" } else { "0" }.to_owned()
            }
            Cond::And(v) | Cond::Or(v) => {
                let joiner = if matches!(c, Cond::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let mut parts = Vec::with_capacity(v.len());
                for sub in v {
                    parts.push(format!("({})", self.cond(sub)?));
                }
                parts.join(joiner)
            }
            Cond::Not(inner) => format!("NOT coalesce(({}), 0)", self.cond(inner)?),
            Cond::Compare(col, op, v) => {
                let e = expr(self.kind, col)?;
                if v.is_null() {
                    return Err(CrmError::invalid_query(
                        None,
                        "null_compare",
                        "compared with null",
                    ));
                }
                let (p, ccy) = param(&e, v)?;
                match (&e.ccy, ccy) {
                    (Some(ce), Some(cp)) => {
                        self.params.push(p);
                        self.params.push(cp);
                        if *op == Op::Ne {
                            // Differs in amount or currency; rows without a value do not match.
                            format!("({0} IS NOT NULL AND NOT ({0} = ? AND {ce} = ?))", e.sql)
                        } else {
                            format!("({} {} ? AND {ce} = ?)", e.sql, op_sql(*op))
                        }
                    }
                    _ => {
                        self.params.push(p);
                        format!("{} {} ?", e.sql, op_sql(*op))
                    }
                }
            }
            Cond::In(col, values) => {
                let e = expr(self.kind, col)?;
                let values: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
                if values.is_empty() {
                    return Ok("0".to_owned());
                }
                if let Some(ce) = &e.ccy {
                    let mut parts = Vec::new();
                    for v in values {
                        let (p, cp) = param(&e, v)?;
                        self.params.push(p);
                        self.params.push(cp.unwrap_or(Sql::Null));
                        parts.push(format!("({} = ? AND {ce} = ?)", e.sql));
                    }
                    format!("({})", parts.join(" OR "))
                } else {
                    for v in &values {
                        let (p, _) = param(&e, v)?;
                        self.params.push(p);
                    }
                    format!("{} IN ({})", e.sql, placeholders(values.len()))
                }
            }
            Cond::IsNull(col) => {
                let e = expr(self.kind, col)?;
                if e.ty.is_multi() {
                    format!("coalesce(json_array_length({}), 0) = 0", e.each)
                } else {
                    format!("{} IS NULL", e.sql)
                }
            }
            Cond::ListContains(col, v) => {
                let e = expr(self.kind, col)?;
                self.params.push(list_elem(v));
                format!(
                    "EXISTS (SELECT 1 FROM json_each({}) WHERE value = ?)",
                    e.each
                )
            }
            Cond::TextContains(col, text) => {
                let e = expr(self.kind, col)?;
                self.params.push(Sql::Text(text.clone()));
                format!("instr(lower({}), lower(?)) > 0", e.sql)
            }
            Cond::StartsWith(col, prefix) => {
                let e = expr(self.kind, col)?;
                if prefix.is_empty() {
                    return Ok(format!("{} IS NOT NULL", e.sql));
                }
                // An index range: [prefix, prefix + U+10FFFF).
                self.params.push(Sql::Text(prefix.clone()));
                self.params.push(Sql::Text(format!("{prefix}\u{10FFFF}")));
                format!("({0} >= ? AND {0} < ?)", e.sql)
            }
            Cond::OwnerIn(ids) => {
                if ids.is_empty() {
                    return Ok("0".to_owned());
                }
                format!("owner_id IN ({})", self.ids(ids))
            }
            Cond::AccountInTerritories { link, territories } => {
                if territories.is_empty() {
                    return Ok("0".to_owned());
                }
                match link {
                    None => {
                        if self.kind.schema().field("territory_id").is_none() {
                            return Err(CrmError::invalid_query(
                                Some("territory_id"),
                                "unknown_field",
                                "this entity has no territory",
                            ));
                        }
                        format!("territory_id IN ({})", self.ids(territories))
                    }
                    Some(link) => {
                        let spec = self.kind.schema().field(link).ok_or_else(|| {
                            CrmError::invalid_query(Some(link), "unknown_field", "no such field")
                        })?;
                        self.params.push(Sql::Text(self.tenant.clone()));
                        format!(
                            "{} IN (SELECT id FROM accounts WHERE tenant_id = ? AND territory_id IN ({}))",
                            spec.name,
                            self.ids(territories)
                        )
                    }
                }
            }
            Cond::SharedWith {
                principals,
                edit,
                at,
            } => {
                if principals.is_empty() {
                    return Ok("0".to_owned());
                }
                self.params.push(Sql::Text(self.tenant.clone()));
                self.params.push(Sql::Text(self.kind.name().to_owned()));
                let users = self.ids(principals);
                let teams = self.ids(principals);
                let accounts = self.ids(principals);
                self.params.push(Sql::Integer(ts_to_int(*at)));
                let mut s = format!(
                    "id IN (SELECT record_id FROM shares WHERE tenant_id = ? AND record_kind = ? \
                     AND deleted_at IS NULL AND (grantee_user_id IN ({users}) \
                     OR grantee_team_id IN ({teams}) OR grantee_account_id IN ({accounts})) \
                     AND (expires_at IS NULL OR expires_at > ?)"
                );
                if *edit {
                    self.params.push(Sql::Text("edit".to_owned()));
                    s.push_str(" AND access = ?");
                }
                s.push(')');
                s
            }
        })
    }

    /// Keyset predicate: rows strictly after `(value, id)` in the order, NULL-aware (NULLs sort first
    /// ascending, last descending).
    fn keyset(&mut self, sort: Option<&(Column, bool)>, k: &Keyset) -> Result<String> {
        let id = Sql::Blob(k.id.as_bytes().to_vec());
        let Some((col, desc)) = sort else {
            self.params.push(id);
            return Ok("id > ?".to_owned());
        };
        if *col == Column::Meta(MetaColumn::Id) {
            self.params.push(id);
            return Ok(if *desc { "id < ?" } else { "id > ?" }.to_owned());
        }
        let e = expr(self.kind, col)?;
        let x = &e.sql;
        if k.value.is_null() {
            self.params.push(id);
            return Ok(if *desc {
                format!("({x} IS NULL AND id < ?)")
            } else {
                format!("(({x} IS NULL AND id > ?) OR {x} IS NOT NULL)")
            });
        }
        let (p, _) = param(&e, &k.value)?;
        self.params.push(p);
        self.params.push(id);
        Ok(if *desc {
            format!("(({x}, id) < (?, ?) OR {x} IS NULL)")
        } else {
            format!("({x}, id) > (?, ?)")
        })
    }
}

fn order_by(kind: EntityKind, sort: Option<&(Column, bool)>) -> Result<String> {
    Ok(match sort {
        None => "id".to_owned(),
        Some((Column::Meta(MetaColumn::Id), desc)) => {
            if *desc { "id DESC" } else { "id" }.to_owned()
        }
        Some((col, desc)) => {
            let e = expr(kind, col)?;
            if *desc {
                format!("{} DESC, id DESC", e.sql)
            } else {
                format!("{}, id", e.sql)
            }
        }
    })
}

/// `WHERE …` (tenant, liveness, condition) of a query, without cursor.
fn where_clause(c: &mut Compiler, q: &Query) -> Result<String> {
    c.params.push(Sql::Text(q.tenant.as_str().to_owned()));
    let live = match q.liveness {
        Liveness::Live => " AND deleted_at IS NULL",
        Liveness::Deleted => " AND deleted_at IS NOT NULL",
        Liveness::Any => "",
    };
    let cond = match &q.cond {
        Cond::True => String::new(),
        other => format!(" AND ({})", c.cond(other)?),
    };
    Ok(format!("WHERE tenant_id = ?{live}{cond}"))
}

fn compiler(q: &Query) -> Compiler {
    Compiler {
        kind: q.kind,
        tenant: q.tenant.as_str().to_owned(),
        params: Vec::new(),
    }
}

/// A keyset page whose remaining rows are not one index range: descending after a non-null value
/// (the rest is "smaller values, then every NULL"), or ascending after a NULL ("later NULLs, then
/// every value"). Compiled as two index ranges, each limited, merged and cut to the page size, so a
/// late page costs what the first costs.
fn split_page(q: &Query, col: &Column, desc: bool, k: &Keyset, limit: u32) -> Result<Stmt> {
    let e = expr(q.kind, col)?;
    let x = &e.sql;
    let list = select_list(q.kind, q.fields.as_deref());
    let table = q.kind.table();
    let id = || Sql::Blob(k.id.as_bytes().to_vec());
    let mut params = Vec::new();
    let mut branch = |extra: String, extra_params: Vec<Sql>, order: &str| -> Result<String> {
        let mut c = compiler(q);
        let w = where_clause(&mut c, q)?;
        params.extend(c.params);
        params.extend(extra_params);
        Ok(format!(
            "SELECT * FROM (SELECT {list}, {x} AS sort_key FROM {table} {w} AND {extra} \
             ORDER BY {order} LIMIT {limit})"
        ))
    };
    let (a, b, outer) = if desc {
        let (p, _) = param(&e, &k.value)?;
        (
            branch(
                format!("({x}, id) < (?, ?)"),
                vec![p, id()],
                &format!("{x} DESC, id DESC"),
            )?,
            branch(format!("{x} IS NULL"), vec![], "id DESC")?,
            "sort_key DESC, id DESC",
        )
    } else {
        (
            branch(format!("{x} IS NULL AND id > ?"), vec![id()], "id")?,
            branch(format!("{x} IS NOT NULL"), vec![], &format!("{x}, id"))?,
            "sort_key, id",
        )
    };
    Ok(Stmt {
        sql: format!("{a} UNION ALL {b} ORDER BY {outer} LIMIT {limit}"),
        params,
    })
}

/// The row query of `q`.
pub(crate) fn select(q: &Query) -> Result<Stmt> {
    if let (Some((col, desc)), Some(k), Some(limit)) = (&q.sort, &q.after, q.limit) {
        if *col != Column::Meta(MetaColumn::Id) && *desc != k.value.is_null() {
            return split_page(q, col, *desc, k, limit);
        }
    }
    let mut c = compiler(q);
    let mut sql = format!(
        "SELECT {} FROM {} {}",
        select_list(q.kind, q.fields.as_deref()),
        q.kind.table(),
        where_clause(&mut c, q)?
    );
    if let Some(k) = &q.after {
        let ks = c.keyset(q.sort.as_ref(), k)?;
        sql.push_str(" AND ");
        sql.push_str(&ks);
    }
    sql.push_str(" ORDER BY ");
    sql.push_str(&order_by(q.kind, q.sort.as_ref())?);
    if let Some(limit) = q.limit {
        // The page size is a typed integer chosen by the library (never text), written as a literal
        // so SQLite's planner can see how few rows are wanted: with `LIMIT ?` it may plan for all of
        // them (measured: 220 µs instead of 31 µs for a permission-scoped first page).
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    Ok(Stmt {
        sql,
        params: c.params,
    })
}

/// The narrow query of [`crm_core::ReadTx::scan_fields`]: `id` then the columns of `fields` (money:
/// amount then currency) of the rows `q` matches, unordered (sort, cursor, limit and `q.fields`
/// ignored), so the planner may answer it from a covering index.
pub(crate) fn select_fields(q: &Query, fields: &[&str]) -> Result<Stmt> {
    let mut list = "id".to_owned();
    for f in fields {
        if *f == crm_core::OWNER_FIELD {
            list.push_str(", owner_id");
            continue;
        }
        let spec = q.kind.schema().field(f).ok_or_else(|| {
            CrmError::invalid_query(
                Some(f),
                "unknown_field",
                format!("{} has no field `{f}`", q.kind),
            )
        })?;
        for c in field_columns(spec.name, &spec.ty) {
            list.push_str(", ");
            list.push_str(&c);
        }
    }
    let mut c = compiler(q);
    let sql = format!(
        "SELECT {list} FROM {} {}",
        q.kind.table(),
        where_clause(&mut c, q)?
    );
    Ok(Stmt {
        sql,
        params: c.params,
    })
}

/// The count query of `q` (ignores sort, cursor and limit).
pub(crate) fn count(q: &Query) -> Result<Stmt> {
    let mut c = compiler(q);
    let sql = format!(
        "SELECT count(*) FROM {} {}",
        q.kind.table(),
        where_clause(&mut c, q)?
    );
    Ok(Stmt {
        sql,
        params: c.params,
    })
}
