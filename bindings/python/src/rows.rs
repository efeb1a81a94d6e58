//! Result lists handed to Python: `crm_core.frames.Rows`, filled at once ([`result_rows`]) or over a
//! [`ResultTable`] that keeps the core's rows ([`table_rows`]).
//!
//! A table-backed `Rows` builds its Python row objects only when the list is first used (its length
//! is known without them), and its `to_columns()`, `to_dicts()`, `to_pandas()` and `to_polars()`
//! read the columns straight from the core's values: one Python object per cell, none per row, and
//! one `str` per distinct label (segment, lifecycle, currency, product name).

use std::collections::HashMap;
use std::fmt::Write as _;

use crm_core::analytics::Lifecycle;
use crm_core::{Decimal, Money as CoreMoney, RecordId};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyType};

use crate::types::{CustomerValue, Money, ProfitRow, RfmRow};

static ROWS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Wraps results in `crm_core.frames.Rows` (a `list` subclass with `to_dicts`, `to_pandas` and
/// `to_polars`); `of` is the item type and `columns` names tuple fields or export columns.
pub(crate) fn result_rows<'py, T>(
    py: Python<'py>,
    items: Vec<T>,
    of: Option<Bound<'py, PyType>>,
    columns: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyAny>>
where
    T: IntoPyObject<'py>,
{
    let cls = ROWS.import(py, "crm_core.frames", "Rows")?;
    let list = PyList::new(py, items)?;
    cls.call1((list, of, columns))
}

/// A `crm_core.frames.Rows` over `table`, whose items are `of` objects (tuples named by `columns`
/// for lifecycles), built now; the list keeps `table` for its column conversions.
pub(crate) fn table_rows<'py>(
    py: Python<'py>,
    table: ResultTable,
    of: Bound<'py, PyType>,
    columns: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyAny>> {
    let cls = ROWS.import(py, "crm_core.frames", "Rows")?;
    cls.call_method1("_from_table", (Py::new(py, table)?, of, columns))
}

/// The core's rows of one result.
enum Data {
    Rfm(Vec<crm_core::RfmRow>),
    Profit(Vec<crm_core::ProfitRow>),
    Values(Vec<crm_core::CustomerValue>),
    Lifecycles(Vec<(RecordId, Lifecycle)>),
}

/// An analytics result as the core returned it, for `crm_core.frames.Rows`: the row objects
/// (`rows()`) and the columns (`columns()`) are built from it on demand.
#[pyclass(frozen, module = "crm_core._crm_core")]
pub(crate) struct ResultTable(Data);

impl From<Vec<crm_core::RfmRow>> for ResultTable {
    fn from(rows: Vec<crm_core::RfmRow>) -> Self {
        ResultTable(Data::Rfm(rows))
    }
}

impl From<Vec<crm_core::ProfitRow>> for ResultTable {
    fn from(rows: Vec<crm_core::ProfitRow>) -> Self {
        ResultTable(Data::Profit(rows))
    }
}

impl From<Vec<crm_core::CustomerValue>> for ResultTable {
    fn from(rows: Vec<crm_core::CustomerValue>) -> Self {
        ResultTable(Data::Values(rows))
    }
}

impl From<Vec<(RecordId, Lifecycle)>> for ResultTable {
    fn from(rows: Vec<(RecordId, Lifecycle)>) -> Self {
        ResultTable(Data::Lifecycles(rows))
    }
}

impl ResultTable {
    /// Adds every column to `c`, in display order (the order of `crm_core.frames._COLUMNS`).
    fn build<'a>(&'a self, c: &mut Columns<'_, 'a>) -> PyResult<()> {
        match &self.0 {
            Data::Rfm(rows) => {
                c.ids("account_id", rows, |r| Some(r.account_id))?;
                c.values("recency_days", rows, |r| r.recency_days)?;
                c.values("frequency", rows, |r| r.frequency)?;
                c.money("monetary", rows, |r| Some(r.monetary))?;
                c.values("r", rows, |r| r.r)?;
                c.values("f", rows, |r| r.f)?;
                c.values("m", rows, |r| r.m)?;
                c.labels("segment", rows, |r| Some(r.segment.as_str()))?;
                c.labels("lifecycle", rows, |r| Some(r.lifecycle.name()))
            }
            Data::Profit(rows) => {
                c.labels("segment", rows, |r| Some(r.segment.as_str()))?;
                c.ids("product_id", rows, |r| r.product_id)?;
                c.labels("product", rows, |r| Some(r.product.as_str()))?;
                c.decimals("quantity", rows, |r| Some(r.quantity))?;
                c.money("revenue", rows, |r| Some(r.revenue))?;
                c.money("cost", rows, |r| Some(r.cost))?;
                c.money("margin", rows, |r| Some(r.margin))?;
                c.values("lines_without_cost", rows, |r| r.lines_without_cost)
            }
            Data::Values(rows) => {
                c.ids("account_id", rows, |r| Some(r.account_id))?;
                c.values("orders", rows, |r| r.orders)?;
                c.money("lifetime_value", rows, |r| r.lifetime_value)?;
                c.money("average_order_value", rows, |r| r.average_order_value)?;
                c.money("predicted_value", rows, |r| r.predicted_value)?;
                c.values("churn_risk", rows, |r| r.churn_risk)?;
                c.values("csat", rows, |r| r.csat)?;
                c.values("nps", rows, |r| r.nps)?;
                c.values("survey_responses", rows, |r| r.survey_responses)
            }
            Data::Lifecycles(rows) => {
                c.ids("account_id", rows, |(id, _)| Some(*id))?;
                c.labels("lifecycle", rows, |(_, l)| Some(l.name()))
            }
        }
    }
}

#[pymethods]
impl ResultTable {
    fn __len__(&self) -> usize {
        match &self.0 {
            Data::Rfm(rows) => rows.len(),
            Data::Profit(rows) => rows.len(),
            Data::Values(rows) => rows.len(),
            Data::Lifecycles(rows) => rows.len(),
        }
    }

    /// The row objects, in order (`RfmRow`, `ProfitRow`, `CustomerValue` or
    /// `(account_id, lifecycle)` tuples), each built anew.
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        match &self.0 {
            Data::Rfm(rows) => PyList::new(py, rows.iter().map(RfmRow::from)),
            Data::Profit(rows) => PyList::new(py, rows.iter().map(ProfitRow::from)),
            Data::Values(rows) => PyList::new(py, rows.iter().map(CustomerValue::from)),
            Data::Lifecycles(rows) => {
                PyList::new(py, rows.iter().map(|(id, l)| (id.to_string(), l.name())))
            }
        }
    }

    /// The column names in display order; with `split_money` a money column `x` is followed by
    /// `x_currency`.
    fn names(&self, py: Python<'_>, split_money: bool) -> PyResult<Vec<String>> {
        let mut c = Columns::new(py, split_money, false, false);
        self.build(&mut c)?;
        Ok(c.names)
    }

    /// `({name: [value, …]}, {decimal column: largest scale})`: the columns in display order, as
    /// the row objects' attributes give them (`Decimal`s, `str` ids and labels, `int`s, `float`s,
    /// `None`), money split into amount and currency with `split_money` and `Money` objects
    /// without; the scales cover the decimal columns holding at least one value. With
    /// `decimal_text` the decimals stay the plain text they would be parsed from (`"123.40"`), for
    /// a DataFrame library to parse.
    #[pyo3(signature = (split_money, decimal_text=false))]
    fn columns<'py>(
        &self,
        py: Python<'py>,
        split_money: bool,
        decimal_text: bool,
    ) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let mut c = Columns::new(py, split_money, decimal_text, true);
        self.build(&mut c)?;
        Ok((c.out, c.scales))
    }

    fn __repr__(&self) -> String {
        let kind = match &self.0 {
            Data::Rfm(_) => "rfm",
            Data::Profit(_) => "profit",
            Data::Values(_) => "customer values",
            Data::Lifecycles(_) => "lifecycles",
        };
        format!("<ResultTable {kind}, {} rows>", self.__len__())
    }
}

/// Builds the columns of a table (or, without `values`, only their names).
struct Columns<'py, 'a> {
    py: Python<'py>,
    split_money: bool,
    decimal_text: bool,
    values: bool,
    names: Vec<String>,
    out: Bound<'py, PyDict>,
    scales: Bound<'py, PyDict>,
    labels: Labels<'py, 'a>,
    /// Text of the id or decimal being converted (one allocation for the whole table).
    buf: String,
}

impl<'py, 'a> Columns<'py, 'a> {
    fn new(py: Python<'py>, split_money: bool, decimal_text: bool, values: bool) -> Self {
        Columns {
            py,
            split_money,
            decimal_text,
            values,
            names: Vec::new(),
            out: PyDict::new(py),
            scales: PyDict::new(py),
            labels: Labels::default(),
            buf: String::with_capacity(48),
        }
    }

    /// Records `name`; true when its values are to be built.
    fn start(&mut self, name: &str) -> bool {
        self.names.push(name.to_owned());
        self.values
    }

    fn put(&mut self, name: &str, values: Vec<Bound<'py, PyAny>>) -> PyResult<()> {
        self.out.set_item(name, PyList::new(self.py, values)?)
    }

    /// Values converted as the row objects' getters convert them (`int`, `float`, `None`).
    fn values<R, T, F>(&mut self, name: &str, rows: &'a [R], get: F) -> PyResult<()>
    where
        T: IntoPyObject<'py>,
        F: Fn(&'a R) -> T,
    {
        if self.start(name) {
            let list = PyList::new(self.py, rows.iter().map(get))?;
            self.out.set_item(name, list)?;
        }
        Ok(())
    }

    /// Record ids as their hyphenated text, `None` for none.
    fn ids<R, F>(&mut self, name: &str, rows: &'a [R], get: F) -> PyResult<()>
    where
        F: Fn(&'a R) -> Option<RecordId>,
    {
        if !self.start(name) {
            return Ok(());
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(match get(r) {
                Some(id) => {
                    self.buf.clear();
                    write!(self.buf, "{id}").map_err(text_error)?;
                    PyString::new(self.py, &self.buf).into_any()
                }
                None => self.py.None().into_bound(self.py),
            });
        }
        self.put(name, out)
    }

    /// Text with few distinct values: one `str` object per value, shared by the rows.
    fn labels<R, F>(&mut self, name: &str, rows: &'a [R], get: F) -> PyResult<()>
    where
        F: Fn(&'a R) -> Option<&'a str>,
    {
        if !self.start(name) {
            return Ok(());
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(match get(r) {
                Some(s) => self.labels.get(self.py, s).into_any(),
                None => self.py.None().into_bound(self.py),
            });
        }
        self.put(name, out)
    }

    /// Exact `decimal.Decimal`s (from the same text as the row objects' getters use; that text
    /// itself with `decimal_text`), `None` for none; records the largest scale when there is at
    /// least one value.
    fn decimals<R, F>(&mut self, name: &str, rows: &'a [R], get: F) -> PyResult<()>
    where
        F: Fn(&'a R) -> Option<Decimal>,
    {
        if !self.start(name) {
            return Ok(());
        }
        let cls = DECIMAL.import(self.py, "decimal", "Decimal")?;
        let mut out = Vec::with_capacity(rows.len());
        let mut digits = [0u8; 52];
        let mut scale: Option<u32> = None;
        for r in rows {
            out.push(match get(r) {
                Some(d) => {
                    scale = Some(scale.map_or(d.scale(), |s| s.max(d.scale())));
                    let text = match decimal_text(d, &mut digits) {
                        Some(t) => PyString::new(self.py, t),
                        None => {
                            self.buf.clear();
                            write!(self.buf, "{d}").map_err(text_error)?;
                            PyString::new(self.py, &self.buf)
                        }
                    };
                    if self.decimal_text {
                        text.into_any()
                    } else {
                        cls.call1((text,))?
                    }
                }
                None => self.py.None().into_bound(self.py),
            });
        }
        if let Some(s) = scale {
            self.scales.set_item(name, s)?;
        }
        self.put(name, out)
    }

    /// With `split_money`, the amount (`x`, decimals) and the currency code (`x_currency`), both
    /// `None` for no amount; without, `Money` objects.
    fn money<R, F>(&mut self, name: &str, rows: &'a [R], get: F) -> PyResult<()>
    where
        F: Fn(&'a R) -> Option<CoreMoney>,
    {
        if !self.split_money {
            return self.values(name, rows, |r| get(r).map(Money));
        }
        self.decimals(name, rows, |r| get(r).map(|m| m.amount))?;
        let currency = format!("{name}_currency");
        self.labels(&currency, rows, |r| get(r).map(|m| m.currency.code()))
    }
}

/// The Python strings of a table's labels, one per distinct text. Labels are few (segments,
/// lifecycles, currencies) and often the very same `&str`: a short list is searched first.
#[derive(Default)]
struct Labels<'py, 'a> {
    few: Vec<(&'a str, Bound<'py, PyString>)>,
    many: HashMap<&'a str, Bound<'py, PyString>>,
}

impl<'py, 'a> Labels<'py, 'a> {
    const FEW: usize = 16;

    fn get(&mut self, py: Python<'py>, s: &'a str) -> Bound<'py, PyString> {
        let hit = self
            .few
            .iter()
            .find(|(k, _)| k.len() == s.len() && (std::ptr::eq(k.as_ptr(), s.as_ptr()) || *k == s));
        if let Some((_, label)) = hit {
            return label.clone();
        }
        if self.few.len() < Self::FEW {
            let label = PyString::new(py, s);
            self.few.push((s, label.clone()));
            return label;
        }
        self.many
            .entry(s)
            .or_insert_with(|| PyString::new(py, s))
            .clone()
    }
}

/// `d` as `Decimal`'s `Display` writes it (what pyo3's conversion to `decimal.Decimal` parses),
/// in the end of `buf`: a `-` for a negative sign (also of zero), the digits of the mantissa with at
/// least one before the point, and `scale` digits after it. `None` for a mantissa beyond 64 bits
/// (rare; the caller then uses `Display` itself).
fn decimal_text(d: Decimal, buf: &mut [u8; 52]) -> Option<&str> {
    let mut m = u64::try_from(d.mantissa().unsigned_abs()).ok()?;
    // At most 28 digits after the point, a point, 20 before it and a sign: they fit in `buf`.
    let scale = usize::try_from(d.scale()).ok().filter(|s| *s <= 28)?;
    let mut i = buf.len();
    for _ in 0..scale {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
    }
    if scale > 0 {
        i -= 1;
        buf[i] = b'.';
    }
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if d.is_sign_negative() {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).ok()
}

fn text_error(_: std::fmt::Error) -> PyErr {
    PyRuntimeError::new_err("a value could not be written as text")
}
