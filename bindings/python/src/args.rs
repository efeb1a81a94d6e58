//! Integer parameters of the Python API (`limit`, `version`, `after`, …), read by
//! `#[pyo3(from_py_with = …)]` extractors that know the parameter's name.
//!
//! pyo3's own extraction raises a bare `OverflowError` for `limit=-1` or `after=2**70`; here a
//! number out of the parameter's range is the library's `ValidationError` (rule `range`, `field` =
//! the parameter), a non-integer a `TypeError` naming the parameter, and every page size
//! (`limit`, `page_size`) is at least 1.

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyString};

use crate::convert::out_of_range;

/// An integer type a parameter is read as, with its range.
pub(crate) trait IntArg: TryFrom<i128> {
    /// The smallest value of the type.
    const MIN: i128;
    /// The largest value of the type.
    const MAX: i128;
}

macro_rules! int_arg_types {
    ($($t:ty),*) => {$(
        impl IntArg for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
        }
    )*};
}
int_arg_types!(i64, u32, u64, usize);

/// A Python int (or an object with `__index__`) as an `i128`, without judging its range yet:
/// `None` when it fits neither `i64` nor `u64`.
fn py_int(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<i128>> {
    let py = obj.py();
    let not_an_int = || -> PyResult<PyErr> {
        Ok(PyTypeError::new_err(format!(
            "`{name}` must be an int, not `{}`",
            obj.get_type().name()?
        )))
    };
    // A float has no `__index__`, but say so plainly rather than relying on it.
    if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyString>() {
        return Err(not_an_int()?);
    }
    match obj.extract::<i64>() {
        Ok(i) => Ok(Some(i.into())),
        Err(e) if e.is_instance_of::<PyOverflowError>(py) => {
            Ok(obj.extract::<u64>().ok().map(i128::from))
        }
        Err(_) => Err(not_an_int()?),
    }
}

/// The parameter `name` as a `T` not below `min`.
pub(crate) fn int_in<T: IntArg>(obj: &Bound<'_, PyAny>, name: &str, min: i128) -> PyResult<T> {
    let value = py_int(obj, name)?;
    value
        .filter(|v| (min..=T::MAX).contains(v))
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| {
            out_of_range(
                obj.py(),
                name,
                format!("`{name}` must be between {min} and {}", T::MAX),
            )
        })
}

/// The optional parameter `name` (`None` stays `None`) as a `T` not below `min`.
pub(crate) fn opt_int_in<T: IntArg>(
    obj: &Bound<'_, PyAny>,
    name: &str,
    min: i128,
) -> PyResult<Option<T>> {
    if obj.is_none() {
        return Ok(None);
    }
    int_in(obj, name, min).map(Some)
}

/// Defines one extractor per parameter: `name: type` (the type's whole range), `name: type, min n`,
/// and `name: Option<type>` (the same for an optional parameter).
macro_rules! int_params {
    ($($f:ident = $name:literal: $t:ty $(, min $min:literal)?;)*) => {$(
        #[doc = concat!("Reads the parameter `", $name, "` (see the module documentation).")]
        pub(crate) fn $f(obj: &Bound<'_, PyAny>) -> PyResult<$t> {
            int_in(obj, $name, int_params!(@min $t $(, $min)?))
        }
    )*};
    (@min $t:ty) => { <$t as IntArg>::MIN };
    (@min $t:ty, $min:literal) => { $min };
}

macro_rules! opt_int_params {
    ($($f:ident = $name:literal: Option<$t:ty> $(, min $min:literal)?;)*) => {$(
        #[doc = concat!("Reads the optional parameter `", $name, "` (see the module documentation).")]
        pub(crate) fn $f(obj: &Bound<'_, PyAny>) -> PyResult<Option<$t>> {
            opt_int_in(obj, $name, int_params!(@min $t $(, $min)?))
        }
    )*};
}

int_params! {
    version = "version": i64;
    restore_to = "restore_to": i64;
    n = "n": i64;
    a = "a": i64;
    b = "b": i64;
    new_days = "new_days": i64;
    active_days = "active_days": i64;
    dormant_days = "dormant_days": i64;
    after_seq = "after": u64;
    horizon_years = "horizon_years": u32;
    limit = "limit": u32 , min 1;
    page_size = "page_size": u32 , min 1;
    top = "limit": usize , min 1;
}

opt_int_params! {
    opt_version = "version": Option<i64>;
    before = "before": Option<u64>;
    window_days = "window_days": Option<u32>;
    opt_limit = "limit": Option<u32> , min 1;
}

/// The parameter `seqs`: an iterable of outbox sequence numbers (`seqs[i]` names a bad one).
pub(crate) fn seqs(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "`seqs` must be an iterable of ints, not `str`",
        ));
    }
    let items = obj
        .try_iter()
        .map_err(|_| PyTypeError::new_err("`seqs` must be an iterable of ints"))?;
    let mut out = Vec::new();
    for (i, item) in items.enumerate() {
        out.push(int_in(&item?, &format!("seqs[{i}]"), 0)?);
    }
    Ok(out)
}
