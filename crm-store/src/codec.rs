//! Value encoding: how each field type is laid out in columns and in the `custom` JSON object.

use chrono::{DateTime, NaiveDate, Utc};
use crm_core::backend::CustomTypes;
use crm_core::{CrmError, Currency, FieldType, Fields, LineItem, Money, RecordId, Result, Value};
use rusqlite::types::{ToSqlOutput, Value as Sql, ValueRef};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value as Json;

/// Decimals are stored as integers holding the value × 10⁴.
const SCALE: u32 = 4;

pub(crate) use crate::error::{corrupt, storage};

fn mismatch(field: &str, ty: &FieldType) -> CrmError {
    CrmError::validation(
        field,
        "type",
        format!("expected a value of type `{}`", ty.name()),
    )
}

/// `d` × 10⁴ as an exact integer.
pub(crate) fn dec_to_int(d: Decimal, field: &str) -> Result<i64> {
    let bad = || {
        CrmError::validation(
            field,
            "decimal_scale",
            "the number has more than 4 decimal places or is out of range",
        )
    };
    let scaled = d.checked_mul(Decimal::from(10_000)).ok_or_else(bad)?;
    if !scaled.fract().is_zero() {
        return Err(bad());
    }
    scaled.to_i64().ok_or_else(bad)
}

pub(crate) fn int_to_dec(i: i64) -> Decimal {
    Decimal::new(i, SCALE).normalize()
}

pub(crate) fn ts_to_int(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn int_to_ts(i: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(i).ok_or_else(|| corrupt("timestamp"))
}

pub(crate) fn date_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn id_hex(id: RecordId) -> String {
    id.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_id(s: &str) -> Option<RecordId> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(RecordId::from_bytes(out))
}

pub(crate) fn blob_id(b: &[u8]) -> Result<RecordId> {
    let arr: [u8; 16] = b.try_into().map_err(|_| corrupt("id"))?;
    Ok(RecordId::from_bytes(arr))
}

fn json_text(j: &Json) -> Result<String> {
    serde_json::to_string(j).map_err(|_| CrmError::internal("json encoding failed"))
}

/// Encodes a built-in field value into its column value(s) (two for money).
pub(crate) fn encode_column(ty: &FieldType, v: &Value, field: &str) -> Result<Vec<Sql>> {
    let mut out = Vec::with_capacity(2);
    encode_column_into(ty, v, field, &mut out)?;
    Ok(out.into_iter().map(owned).collect())
}

/// An encoded parameter as an owned SQL value.
fn owned(p: ToSqlOutput<'_>) -> Sql {
    match p {
        ToSqlOutput::Borrowed(v) => Sql::from(v),
        ToSqlOutput::Owned(v) => v,
        // Only the two variants above are produced here.
        _ => Sql::Null,
    }
}

/// [`encode_column`] appending to `out`, borrowing text and ids from `v` instead of copying them
/// (a record insert binds some forty parameters).
pub(crate) fn encode_column_into<'a>(
    ty: &FieldType,
    v: &'a Value,
    field: &str,
    out: &mut Vec<ToSqlOutput<'a>>,
) -> Result<()> {
    let owned = |s: Sql| ToSqlOutput::Owned(s);
    match (ty, v) {
        (FieldType::Money, Value::Null) => {
            out.push(owned(Sql::Null));
            out.push(owned(Sql::Null));
        }
        (FieldType::Money, Value::Money(m)) => {
            out.push(owned(Sql::Integer(dec_to_int(m.amount, field)?)));
            out.push(ToSqlOutput::Borrowed(ValueRef::Text(
                m.currency.code().as_bytes(),
            )));
        }
        (_, Value::Null) => out.push(owned(Sql::Null)),
        (
            FieldType::Text
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Country
            | FieldType::Currency
            | FieldType::Choice { .. },
            Value::Text(s),
        ) => out.push(ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))),
        (FieldType::Int, Value::Int(i)) => out.push(owned(Sql::Integer(*i))),
        (FieldType::Decimal, Value::Decimal(d)) => {
            out.push(owned(Sql::Integer(dec_to_int(*d, field)?)));
        }
        (FieldType::Date, Value::Date(d)) => out.push(owned(Sql::Text(date_text(*d)))),
        (FieldType::Timestamp, Value::Timestamp(t)) => {
            out.push(owned(Sql::Integer(ts_to_int(*t))));
        }
        (FieldType::Bool, Value::Bool(b)) => out.push(owned(Sql::Integer(i64::from(*b)))),
        (FieldType::Reference { .. } | FieldType::AnyReference, Value::Ref(id)) => {
            out.push(ToSqlOutput::Borrowed(ValueRef::Blob(id.as_bytes())));
        }
        (FieldType::MultiChoice { .. } | FieldType::MultiReference { .. }, Value::List(l)) => {
            out.push(owned(Sql::Text(
                serde_json::to_string(l).map_err(|_| CrmError::internal("json encoding failed"))?,
            )));
        }
        (FieldType::Lines, Value::Lines(l)) => out.push(owned(Sql::Text(
            serde_json::to_string(l).map_err(|_| CrmError::internal("json encoding failed"))?,
        ))),
        (FieldType::Json, Value::Json(j)) => out.push(owned(Sql::Text(json_text(j)?))),
        _ => return Err(mismatch(field, ty)),
    }
    Ok(())
}

/// Decodes a built-in field from its column value(s); `None` when there is no value.
pub(crate) fn decode_column(ty: &FieldType, v: Sql, ccy: Option<Sql>) -> Result<Option<Value>> {
    let bad = || corrupt("field value");
    Ok(Some(match (ty, v) {
        (_, Sql::Null) => return Ok(None),
        (FieldType::Money, Sql::Integer(i)) => {
            let Some(Sql::Text(code)) = ccy else {
                return Err(bad());
            };
            let currency = Currency::parse_field(&code, "currency").map_err(|_| bad())?;
            Value::Money(Money::new(int_to_dec(i), currency))
        }
        (FieldType::Int, Sql::Integer(i)) => Value::Int(i),
        (FieldType::Decimal, Sql::Integer(i)) => Value::Decimal(int_to_dec(i)),
        (FieldType::Timestamp, Sql::Integer(i)) => Value::Timestamp(int_to_ts(i)?),
        (FieldType::Bool, Sql::Integer(i)) => Value::Bool(i != 0),
        (FieldType::Reference { .. } | FieldType::AnyReference, Sql::Blob(b)) => {
            Value::Ref(blob_id(&b)?)
        }
        (FieldType::Date, Sql::Text(s)) => {
            Value::Date(NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| corrupt("date"))?)
        }
        (FieldType::MultiChoice { .. } | FieldType::MultiReference { .. }, Sql::Text(s)) => {
            Value::List(serde_json::from_str(&s).map_err(|_| bad())?)
        }
        (FieldType::Lines, Sql::Text(s)) => {
            Value::Lines(serde_json::from_str::<Vec<LineItem>>(&s).map_err(|_| bad())?)
        }
        (FieldType::Json, Sql::Text(s)) => {
            Value::Json(serde_json::from_str(&s).map_err(|_| bad())?)
        }
        (
            FieldType::Text
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Country
            | FieldType::Currency
            | FieldType::Choice { .. },
            Sql::Text(s),
        ) => Value::Text(s),
        _ => return Err(bad()),
    }))
}

/// Currencies already parsed while decoding many rows (a handful of codes at most).
#[derive(Default)]
pub(crate) struct Currencies(Vec<([u8; 3], Currency)>);

impl Currencies {
    fn parse(&mut self, code: &[u8]) -> Option<Currency> {
        if let Ok(key) = <[u8; 3]>::try_from(code) {
            if let Some((_, c)) = self.0.iter().find(|(k, _)| *k == key) {
                return Some(*c);
            }
            let c = Currency::parse_field(std::str::from_utf8(code).ok()?, "currency").ok()?;
            if self.0.len() < 16 {
                self.0.push((key, c));
            }
            return Some(c);
        }
        None
    }
}

/// [`decode_column`] from borrowed column values: the scalar types without allocating (and each
/// currency code parsed once), the others through the owned path. `Value::Null` when empty.
pub(crate) fn decode_column_ref(
    ty: &FieldType,
    v: ValueRef<'_>,
    ccy: Option<ValueRef<'_>>,
    currencies: &mut Currencies,
) -> Result<Value> {
    let bad = || corrupt("field value");
    Ok(match (ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (FieldType::Money, ValueRef::Integer(i)) => {
            let Some(ValueRef::Text(code)) = ccy else {
                return Err(bad());
            };
            let currency = currencies.parse(code).ok_or_else(bad)?;
            Value::Money(Money::new(int_to_dec(i), currency))
        }
        (FieldType::Int, ValueRef::Integer(i)) => Value::Int(i),
        (FieldType::Decimal, ValueRef::Integer(i)) => Value::Decimal(int_to_dec(i)),
        (FieldType::Timestamp, ValueRef::Integer(i)) => Value::Timestamp(int_to_ts(i)?),
        (FieldType::Bool, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (FieldType::Reference { .. } | FieldType::AnyReference, ValueRef::Blob(b)) => {
            Value::Ref(blob_id(b)?)
        }
        (ty, v) => decode_column(ty, Sql::from(v), ccy.map(Sql::from))?.unwrap_or(Value::Null),
    })
}

/// A value as it sits inside the `custom` JSON object (money: the amount only).
pub(crate) fn custom_json(v: &Value, field: &str) -> Result<Option<Json>> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Text(s) => Json::String(s.clone()),
        Value::Int(i) => Json::from(*i),
        Value::Decimal(d) => Json::from(dec_to_int(*d, field)?),
        Value::Money(m) => Json::from(dec_to_int(m.amount, field)?),
        Value::Date(d) => Json::String(date_text(*d)),
        Value::Timestamp(t) => Json::from(ts_to_int(*t)),
        Value::Bool(b) => Json::from(i64::from(*b)),
        Value::Ref(id) => Json::String(id_hex(*id)),
        Value::List(l) => Json::from(l.clone()),
        Value::Lines(l) => {
            serde_json::to_value(l).map_err(|_| CrmError::internal("json encoding failed"))?
        }
        Value::Json(j) => j.clone(),
    }))
}

/// The `custom` column text for a record's custom values (keyed by storage key), or NULL when empty.
pub(crate) fn encode_custom(custom: &Fields) -> Result<Sql> {
    let mut obj = serde_json::Map::new();
    for (key, v) in custom {
        let field = format!("custom.{key}");
        if let Some(j) = custom_json(v, &field)? {
            obj.insert(key.clone(), j);
        }
        if let Value::Money(m) = v {
            obj.insert(
                format!("{key}__ccy"),
                Json::String(m.currency.code().to_owned()),
            );
        }
    }
    if obj.is_empty() {
        return Ok(Sql::Null);
    }
    Ok(Sql::Text(json_text(&Json::Object(obj))?))
}

fn decode_custom_value(ty: &FieldType, j: &Json, ccy: Option<&Json>) -> Option<Value> {
    Some(match ty {
        FieldType::Int => Value::Int(j.as_i64()?),
        FieldType::Decimal => Value::Decimal(int_to_dec(j.as_i64()?)),
        FieldType::Money => Value::Money(Money::new(
            int_to_dec(j.as_i64()?),
            Currency::parse_field(ccy?.as_str()?, "currency").ok()?,
        )),
        FieldType::Date => Value::Date(NaiveDate::parse_from_str(j.as_str()?, "%Y-%m-%d").ok()?),
        FieldType::Timestamp => Value::Timestamp(DateTime::from_timestamp_micros(j.as_i64()?)?),
        FieldType::Bool => Value::Bool(match j {
            Json::Bool(b) => *b,
            _ => j.as_i64()? != 0,
        }),
        FieldType::Reference { .. } | FieldType::AnyReference => Value::Ref(hex_id(j.as_str()?)?),
        FieldType::MultiChoice { .. } | FieldType::MultiReference { .. } => {
            Value::List(serde_json::from_value(j.clone()).ok()?)
        }
        FieldType::Lines => Value::Lines(serde_json::from_value(j.clone()).ok()?),
        FieldType::Json => Value::Json(j.clone()),
        _ => Value::Text(j.as_str()?.to_owned()),
    })
}

/// Decodes the `custom` column. Keys without a known type (or values that do not fit it) come back
/// as `Value::Json` so nothing is dropped.
pub(crate) fn decode_custom(text: Option<String>, types: &CustomTypes) -> Result<Fields> {
    let mut out = Fields::new();
    let Some(text) = text else {
        return Ok(out);
    };
    let Json::Object(obj) = serde_json::from_str::<Json>(&text).map_err(|_| corrupt("custom"))?
    else {
        return Err(corrupt("custom"));
    };
    for (key, j) in &obj {
        if j.is_null() {
            continue;
        }
        match types.get(key) {
            Some(ty) => {
                let ccy = obj.get(&format!("{key}__ccy"));
                let v = decode_custom_value(ty, j, ccy).unwrap_or_else(|| Value::Json(j.clone()));
                out.insert(key.clone(), v);
            }
            None => {
                let is_ccy_of_money = key
                    .strip_suffix("__ccy")
                    .and_then(|base| types.get(base))
                    .is_some_and(|t| matches!(t, FieldType::Money));
                if !is_ccy_of_money {
                    out.insert(key.clone(), Value::Json(j.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// Whether `key` is a valid custom field storage key: `[a-z][a-z0-9_]*`, at most 64 characters.
pub(crate) fn valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && key.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
