//! Conversions between Python objects and core values, JSON and filters.

use std::str::FromStr;

use crm_core::chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use crm_core::{
    Currency, Decimal, EntityKind, FieldType, Fields, Filter, Money as CoreMoney, Value,
};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use pyo3::IntoPyObjectExt;
use serde_json::Value as Json;

use crate::error::Error;
use crate::types::Money;

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn is_decimal(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let t = DECIMAL.import(obj.py(), "decimal", "Decimal")?;
    obj.is_instance(t)
}

fn is_datetime(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let t = DATETIME.import(obj.py(), "datetime", "datetime")?;
    obj.is_instance(t)
}

fn is_date(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let t = DATE.import(obj.py(), "datetime", "date")?;
    obj.is_instance(t)
}

/// An aware datetime as a UTC instant; naive datetimes are refused.
pub(crate) fn to_instant(obj: &Bound<'_, PyAny>) -> PyResult<DateTime<Utc>> {
    if !is_datetime(obj)? {
        return Err(PyTypeError::new_err("expected a datetime"));
    }
    if obj.getattr("tzinfo")?.is_none() || obj.call_method0("utcoffset")?.is_none() {
        return Err(PyValueError::new_err(
            "naive datetime: pass an aware datetime (e.g. with tzinfo=timezone.utc)",
        ));
    }
    Ok(obj.extract::<DateTime<FixedOffset>>()?.with_timezone(&Utc))
}

/// The `TypeError` for a float where a decimal or money amount is expected (`what` names the field
/// or parameter): money and decimals never go through binary floating point.
pub(crate) fn float_refused(what: &str) -> PyErr {
    PyTypeError::new_err(format!(
        "`{what}` must not be a float: money and decimals never go through floating point; \
         pass a decimal.Decimal, an int or a numeric string (e.g. Decimal(\"12.5\"))"
    ))
}

/// The library's `ValidationError` (rule `range`) for a number out of range at `what`.
pub(crate) fn out_of_range(py: Python<'_>, what: &str, message: String) -> PyErr {
    crate::error::to_py(py, crm_core::CrmError::validation(what, "range", message))
}

/// A Python int as an `i64`; beyond that range, a `ValidationError` naming `what`.
fn int_value(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    obj.extract::<i64>().map_err(|e| {
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            out_of_range(
                obj.py(),
                what,
                format!("`{what}` is an integer beyond the 64-bit range"),
            )
        } else {
            e
        }
    })
}

/// A `Decimal`, an int or a numeric string as a core decimal (`what` names the field). A float is a
/// `TypeError`; an int too large for a decimal is a `ValidationError`; any other text that is not a
/// finite decimal is a `ValueError`.
pub(crate) fn decimal_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Decimal> {
    if obj.is_instance_of::<PyFloat>() {
        return Err(float_refused(what));
    }
    let s: String = obj.str()?.extract()?;
    Decimal::from_str(&s)
        .or_else(|_| Decimal::from_scientific(&s))
        .map_err(|_| {
            if obj.is_instance_of::<PyInt>() {
                out_of_range(
                    obj.py(),
                    what,
                    format!("`{what}` is an integer beyond the range of a decimal"),
                )
            } else {
                PyValueError::new_err(format!(
                    "`{what}`: `{s}` is not a finite decimal number in range"
                ))
            }
        })
}

/// A money amount from a `Money`, or a `(amount, currency)` tuple (`what` names the field or
/// parameter); `None` for anything else. A float amount is a `TypeError`.
pub(crate) fn money_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<CoreMoney>> {
    if let Ok(m) = obj.cast::<Money>() {
        return Ok(Some(m.get().0));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        if t.len() == 2 {
            let amount = t.get_item(0)?;
            let code = t.get_item(1)?;
            if code.is_instance_of::<PyString>() {
                if amount.is_instance_of::<PyFloat>() {
                    return Err(float_refused(what));
                }
                if is_decimal(&amount)? || amount.is_instance_of::<PyInt>() {
                    let code: String = code.extract()?;
                    let currency = Currency::parse_field(&code, "currency").map_err(Error)?;
                    return Ok(Some(CoreMoney::new(decimal_of(&amount, what)?, currency)));
                }
            }
        }
    }
    Ok(None)
}

/// A Python value as a core value, by its Python type; `hint` is the field's type when known
/// (needed for `json` and `lines` fields) and `field` names the field in errors.
///
/// A float is refused (`TypeError`): a core value has no float, so it could only become a decimal,
/// and money and decimals never go through floating point. Inside a `json` field a float stays a
/// JSON number; inside line items it is refused like any other decimal.
pub(crate) fn to_value(
    obj: &Bound<'_, PyAny>,
    hint: Option<&FieldType>,
    field: &str,
) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    match hint {
        Some(FieldType::Json) => return Ok(Value::Json(to_json_at(obj, field, Floats::Keep)?)),
        Some(FieldType::Lines) => {
            let j = to_json_at(obj, field, Floats::Refuse)?;
            return Value::from_json(&FieldType::Lines, &j, field).map_err(|e| Error(e).into());
        }
        _ => {}
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(Value::Int(int_value(obj, field)?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::Text(obj.extract()?));
    }
    if obj.is_instance_of::<PyFloat>() {
        return Err(float_refused(field));
    }
    if is_decimal(obj)? {
        return Ok(Value::Decimal(decimal_of(obj, field)?));
    }
    if let Some(m) = money_of(obj, field)? {
        return Ok(Value::Money(m));
    }
    if is_datetime(obj)? {
        return Ok(Value::Timestamp(to_instant(obj)?));
    }
    if is_date(obj)? {
        return Ok(Value::Date(obj.extract::<NaiveDate>()?));
    }
    if obj.is_instance_of::<PyDict>() {
        return Ok(Value::Json(to_json_at(obj, field, Floats::Keep)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut texts = Vec::new();
        let mut all_text = true;
        for item in obj.try_iter()? {
            let item = item?;
            if item.is_instance_of::<PyString>() {
                texts.push(item.extract::<String>()?);
            } else {
                all_text = false;
                break;
            }
        }
        if all_text {
            return Ok(Value::List(texts));
        }
        return Ok(Value::Json(to_json_at(obj, field, Floats::Keep)?));
    }
    Err(PyTypeError::new_err(format!(
        "`{field}`: cannot use a value of type `{}` as a field value",
        obj.get_type().name()?
    )))
}

/// A core value as a Python object.
pub(crate) fn from_value(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Text(s) => s.into_py_any(py)?,
        Value::Int(i) => i.into_py_any(py)?,
        Value::Decimal(d) => d.into_py_any(py)?,
        Value::Money(m) => Money(*m).into_py_any(py)?,
        Value::Date(d) => d.into_py_any(py)?,
        Value::Timestamp(t) => t.into_py_any(py)?,
        Value::Bool(b) => b.into_py_any(py)?,
        Value::Ref(id) => id.to_string().into_py_any(py)?,
        Value::List(items) => items.into_py_any(py)?,
        Value::Lines(lines) => {
            let out = PyList::empty(py);
            for l in lines {
                let d = PyDict::new(py);
                d.set_item("product_id", l.product_id.map(|id| id.to_string()))?;
                d.set_item("description", &l.description)?;
                d.set_item("quantity", l.quantity)?;
                d.set_item("unit_price", l.unit_price)?;
                d.set_item("discount_percent", l.discount_percent)?;
                d.set_item("tax_rate", l.tax_rate)?;
                d.set_item("unit_cost", l.unit_cost)?;
                out.append(d)?;
            }
            out.into_any().unbind()
        }
        Value::Json(j) => from_json(py, j)?,
    })
}

/// What a JSON conversion does with a float.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Floats {
    /// Keeps it as a JSON number (free-form JSON: `json` fields, role policies).
    Keep,
    /// Refuses it with a `TypeError`: the JSON is read as decimals (line items, rate tables,
    /// filter values).
    Refuse,
}

/// A Python object as JSON: decimals and instants become strings, money an object. `path` names
/// the value in errors (`lines[0].unit_price`); ints beyond 64 bits are a `ValidationError`.
pub(crate) fn to_json_at(obj: &Bound<'_, PyAny>, path: &str, floats: Floats) -> PyResult<Json> {
    json_at(obj, path, floats, 0)
}

/// [`to_json_at`] of a value nested `depth` levels deep: past the library's JSON depth limit the
/// answer is a `ValidationError` before the conversion recurses further — no Python value can
/// exhaust the native stack.
fn json_at(obj: &Bound<'_, PyAny>, path: &str, floats: Floats, depth: usize) -> PyResult<Json> {
    if depth > crm_core::MAX_JSON_DEPTH {
        return Err(crate::error::to_py(
            obj.py(),
            crm_core::CrmError::validation(
                path.split(['[', '.']).next().unwrap_or(path),
                "too_deep",
                format!(
                    "JSON values nest at most {} levels",
                    crm_core::MAX_JSON_DEPTH
                ),
            ),
        ));
    }
    if obj.is_none() {
        return Ok(Json::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Json::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Json::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Json::from(u));
        }
        return Err(out_of_range(
            obj.py(),
            path,
            format!("`{path}` is an integer beyond the 64-bit range"),
        ));
    }
    if obj.is_instance_of::<PyFloat>() {
        if floats == Floats::Refuse {
            return Err(float_refused(path));
        }
        let f: f64 = obj.extract()?;
        return serde_json::Number::from_f64(f)
            .map(Json::Number)
            .ok_or_else(|| {
                PyValueError::new_err(format!("`{path}`: non-finite floats cannot be stored"))
            });
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Json::String(obj.extract()?));
    }
    if is_decimal(obj)? {
        return Ok(Json::String(decimal_of(obj, path)?.to_string()));
    }
    if let Ok(m) = obj.cast::<Money>() {
        return Ok(Value::Money(m.get().0).to_json());
    }
    if is_datetime(obj)? {
        return Ok(Value::Timestamp(to_instant(obj)?).to_json());
    }
    if is_date(obj)? {
        return Ok(Value::Date(obj.extract::<NaiveDate>()?).to_json());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (k, v) in d.iter() {
            let key: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!("`{path}`: JSON object keys must be strings"))
            })?;
            let inner = json_at(&v, &format!("{path}.{key}"), floats, depth + 1)?;
            map.insert(key, inner);
        }
        return Ok(Json::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            out.push(json_at(&item?, &format!("{path}[{i}]"), floats, depth + 1)?);
        }
        return Ok(Json::Array(out));
    }
    Err(PyTypeError::new_err(format!(
        "`{path}`: cannot convert a value of type `{}` to JSON",
        obj.get_type().name()?
    )))
}

/// JSON as Python objects.
pub(crate) fn from_json(py: Python<'_>, j: &Json) -> PyResult<Py<PyAny>> {
    Ok(match j {
        Json::Null => py.None(),
        Json::Bool(b) => b.into_py_any(py)?,
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_py_any(py)?
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_py_any(py)?
            }
        }
        Json::String(s) => s.into_py_any(py)?,
        Json::Array(items) => {
            let out = PyList::empty(py);
            for i in items {
                out.append(from_json(py, i)?)?;
            }
            out.into_any().unbind()
        }
        Json::Object(map) => {
            let out = PyDict::new(py);
            for (k, v) in map {
                out.set_item(k, from_json(py, v)?)?;
            }
            out.into_any().unbind()
        }
    })
}

/// The built-in type of field `name` of `kind`, if it is a built-in field.
fn hint(kind: EntityKind, name: &str) -> Option<&'static FieldType> {
    kind.schema().field(name).map(|f| &f.ty)
}

/// Keyword arguments as field values: `custom={...}` and `custom.<name>` keys are custom fields.
pub(crate) fn to_fields(kind: EntityKind, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Fields> {
    let mut out = Fields::new();
    let Some(kwargs) = kwargs else {
        return Ok(out);
    };
    for (k, v) in kwargs.iter() {
        let key: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("field names must be strings"))?;
        if key == "custom" {
            if v.is_none() {
                continue;
            }
            let d = v.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err("`custom` must be a dict of custom field values")
            })?;
            for (ck, cv) in d.iter() {
                let name: String = ck
                    .extract()
                    .map_err(|_| PyTypeError::new_err("custom field names must be strings"))?;
                let field = format!("custom.{name}");
                let value = to_value(&cv, None, &field)?;
                out.insert(field, value);
            }
            continue;
        }
        let value = to_value(&v, hint(kind, &key), &key)?;
        out.insert(key, value);
    }
    Ok(out)
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> PyResult<T> {
    serde_json::from_value(Json::String(s.to_owned()))
        .map_err(|_| PyValueError::new_err(format!("`{s}` is not a valid {what}")))
}

/// A string or a string-valued enum member as a string; anything else is a `TypeError` naming the
/// parameter `what` (`kind`, `action`, …).
pub(crate) fn name_of(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    if obj.is_instance_of::<PyString>() {
        return obj.extract();
    }
    if let Ok(value) = obj.getattr("value") {
        if value.is_instance_of::<PyString>() {
            return value.extract();
        }
    }
    Err(PyTypeError::new_err(format!(
        "`{what}` must be a str or a str enum member, not `{}`",
        obj.get_type().name()?
    )))
}

/// An action name (`read`) or `Action` member as a core action (`what` names the parameter).
pub(crate) fn to_action(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<crm_core::Action> {
    parse_enum(&name_of(obj, what)?, "action")
}

/// A value inside a filter on `field`: the tagged serde form (`{"type": "text", "value": "IT"}`)
/// or a plain Python value (a float is refused, as in field values).
fn filter_value(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Value> {
    if let Ok(d) = obj.cast::<PyDict>() {
        let tagged =
            d.contains("type")? && d.len() <= 2 && (d.len() == 1 || d.contains("value")?);
        if tagged {
            let mut j = serde_json::Map::new();
            for (k, v) in d.iter() {
                let key: String = k.extract()?;
                j.insert(key, to_json_at(&v, field, Floats::Refuse)?);
            }
            return serde_json::from_value(Json::Object(j))
                .map_err(|e| PyValueError::new_err(format!("malformed filter value: {e}")));
        }
    }
    to_value(obj, None, field)
}

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("filter is missing `{key}`")))
}

fn filters(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Vec<Filter>> {
    let mut out = Vec::new();
    for f in obj.try_iter()? {
        out.push(filter_at(&f?, depth)?);
    }
    Ok(out)
}

/// A filter from its serde dict form, a plain `{field: value}` dict (AND of equalities; `None`
/// means "is null"), or any object with a `to_dict()` method (the `F` helpers).
pub(crate) fn to_filter(obj: &Bound<'_, PyAny>) -> PyResult<Filter> {
    filter_at(obj, 1)
}

/// [`to_filter`] of a filter nested `depth` levels deep: past the library's nesting limit the
/// answer is the library's own `InvalidQuery` (rule `too_deep`), before the conversion recurses
/// further — no Python value can exhaust the native stack.
fn filter_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Filter> {
    if depth > crm_core::MAX_FILTER_DEPTH {
        return Err(crate::error::to_py(
            obj.py(),
            crm_core::CrmError::invalid_query(
                None,
                "too_deep",
                format!("filters nest at most {} levels", crm_core::MAX_FILTER_DEPTH),
            ),
        ));
    }
    let dict_obj;
    let d = match obj.cast::<PyDict>() {
        Ok(d) => d.clone(),
        Err(_) => {
            if !obj.hasattr("to_dict")? {
                return Err(PyTypeError::new_err(
                    "a filter is a dict or an F expression",
                ));
            }
            dict_obj = obj.call_method0("to_dict")?;
            dict_obj
                .cast::<PyDict>()
                .map_err(|_| PyTypeError::new_err("to_dict() must return a dict"))?
                .clone()
        }
    };
    let Some(op) = d.get_item("op")? else {
        let mut all = Vec::new();
        for (k, v) in d.iter() {
            let field: String = k.extract()?;
            all.push(if v.is_none() {
                Filter::IsNull { field }
            } else {
                let value = filter_value(&v, &field)?;
                Filter::eq(&field, value)
            });
        }
        if all.len() == 1 {
            if let Some(only) = all.pop() {
                return Ok(only);
            }
        }
        return Ok(Filter::And { all });
    };
    let op: String = op.extract()?;
    let field = || -> PyResult<String> { item(&d, "field")?.extract() };
    Ok(match op.as_str() {
        "and" => Filter::And {
            all: filters(&item(&d, "all")?, depth + 1)?,
        },
        "or" => Filter::Or {
            any: filters(&item(&d, "any")?, depth + 1)?,
        },
        "not" => Filter::Not {
            not: Box::new(filter_at(&item(&d, "not")?, depth + 1)?),
        },
        "compare" => {
            let field = field()?;
            Filter::Compare {
                cmp: parse_enum(&item(&d, "cmp")?.extract::<String>()?, "comparison")?,
                value: filter_value(&item(&d, "value")?, &field)?,
                field,
            }
        }
        "in" => {
            let field = field()?;
            let mut values = Vec::new();
            for v in item(&d, "values")?.try_iter()? {
                values.push(filter_value(&v?, &field)?);
            }
            Filter::In { field, values }
        }
        "is_null" => Filter::IsNull { field: field()? },
        "contains" => {
            let field = field()?;
            Filter::Contains {
                value: filter_value(&item(&d, "value")?, &field)?,
                field,
            }
        }
        "starts_with" => Filter::StartsWith {
            field: field()?,
            value: item(&d, "value")?.extract()?,
        },
        other => {
            return Err(PyValueError::new_err(format!(
                "`{other}` is not a filter operator"
            )))
        }
    })
}

/// An optional filter argument.
pub(crate) fn opt_filter(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Filter>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(to_filter(o)?)),
        _ => Ok(None),
    }
}

/// An entity type name (`account`) or a member of a string enum, given as the parameter `kind`.
pub(crate) fn to_kind(obj: &Bound<'_, PyAny>) -> PyResult<EntityKind> {
    kind_named(obj, "kind")
}

/// An entity type name or a member of a string enum, given as the parameter `what`: any other type
/// is a `TypeError` naming it, an unknown name the library's `ValidationError`.
pub(crate) fn kind_named(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<EntityKind> {
    name_of(obj, what)?
        .parse::<EntityKind>()
        .map_err(|e| Error(e).into())
}
