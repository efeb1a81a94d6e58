//! Money: a `Decimal` amount with an ISO 4217 currency. Never floats.
//!
//! Rounding rule, used everywhere money is derived (quote and order totals): each computed amount is
//! rounded to the currency's minor unit (2 places for EUR/USD, 0 for JPY, 3 for KWD) with
//! **half away from zero** ("commercial rounding"): 0.125 EUR → 0.13, −0.125 EUR → −0.13.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};

/// An ISO 4217 currency code such as `EUR`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Parses an ISO 4217 alphabetic code (upper case), naming `field` in the error.
    pub fn parse_field(code: &str, field: &str) -> Result<Self> {
        iso_currency::Currency::from_code(code)
            .map(Currency)
            .ok_or_else(|| {
                CrmError::validation(
                    field,
                    "currency_code",
                    format!("`{code}` is not an ISO 4217 currency code"),
                )
            })
    }

    /// The three-letter code.
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point of the minor unit (2 for EUR, 0 for JPY).
    pub fn minor_digits(&self) -> u32 {
        self.0.exponent().map(u32::from).unwrap_or(2)
    }

    /// Rounds `amount` to this currency's minor unit, half away from zero.
    pub fn round(&self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.minor_digits(), RoundingStrategy::MidpointAwayFromZero)
    }
}

impl FromStr for Currency {
    type Err = CrmError;
    fn from_str(s: &str) -> Result<Self> {
        Currency::parse_field(s, "currency")
    }
}

impl TryFrom<String> for Currency {
    type Error = CrmError;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount in a currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount, exact.
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
}

impl Money {
    /// An amount in `currency`.
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Money { amount, currency }
    }

    /// Parses `"12.50"` in the currency with code `code`.
    pub fn parse(amount: &str, code: &str) -> Result<Self> {
        let amount = Decimal::from_str(amount).map_err(|_| {
            CrmError::validation("amount", "decimal_syntax", "not a decimal number")
        })?;
        Ok(Money::new(amount, Currency::parse_field(code, "currency")?))
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Money::new(Decimal::ZERO, currency)
    }

    /// The sum; adding two currencies is an error, never a silent mix.
    pub fn checked_add(self, other: Money) -> Result<Money> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or_else(|| CrmError::validation("amount", "overflow", "amount out of range"))?;
        Ok(Money::new(amount, self.currency))
    }

    /// The difference; subtracting across currencies is an error.
    pub fn checked_sub(self, other: Money) -> Result<Money> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or_else(|| CrmError::validation("amount", "overflow", "amount out of range"))?;
        Ok(Money::new(amount, self.currency))
    }

    fn same_currency(&self, other: &Money) -> Result<()> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(CrmError::validation(
                "currency",
                "currency_mismatch",
                format!(
                    "cannot combine amounts in `{}` and `{}` without a rate table",
                    self.currency, other.currency
                ),
            ))
        }
    }

    /// This amount rounded to the currency's minor unit, half away from zero.
    pub fn rounded(self) -> Money {
        Money::new(self.currency.round(self.amount), self.currency)
    }
}

impl fmt::Display for Money {
    /// `1234.5 EUR` shows as `1234.50 EUR`: at least the currency's minor digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut a = self.amount;
        if a.scale() < self.currency.minor_digits() {
            a.rescale(self.currency.minor_digits());
        }
        write!(f, "{} {}", a, self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({} {})", self.amount, self.currency)
    }
}

/// Exchange rates a caller supplies when amounts in several currencies must be combined.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RateTable {
    /// The currency results are expressed in.
    pub base: Option<Currency>,
    /// `rates[c]` = how many `base` units one unit of `c` is worth.
    pub rates: std::collections::BTreeMap<String, Decimal>,
}

impl RateTable {
    /// A table converting into `base`.
    pub fn new(base: Currency) -> Self {
        RateTable {
            base: Some(base),
            rates: Default::default(),
        }
    }

    /// Adds the rate of `from` into the base currency.
    pub fn with_rate(mut self, from: Currency, rate: Decimal) -> Self {
        self.rates.insert(from.code().to_owned(), rate);
        self
    }

    /// Converts `m` into the base currency, or fails naming the missing rate.
    pub fn convert(&self, m: Money) -> Result<Money> {
        let base = self.base.ok_or_else(|| {
            CrmError::validation(
                "rates",
                "rate_missing",
                "the rate table has no base currency",
            )
        })?;
        if m.currency == base {
            return Ok(m);
        }
        let rate = self.rates.get(m.currency.code()).ok_or_else(|| {
            CrmError::validation(
                "currency",
                "rate_missing",
                format!("no exchange rate from `{}` to `{}`", m.currency, base),
            )
        })?;
        let amount = m.amount.checked_mul(*rate).ok_or_else(|| {
            CrmError::validation("rates", "range", "the converted amount is out of range")
        })?;
        Ok(Money::new(amount, base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn dec(s: &str) -> rust_decimal::Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn adding_two_currencies_is_an_error() {
        let a = Money::parse("1.00", "EUR").unwrap();
        let b = Money::parse("1.00", "USD").unwrap();
        let e = a.checked_add(b).unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("currency_mismatch"));
        assert_eq!(a.checked_add(a).unwrap().amount, dec("2.00"));
    }

    #[test]
    fn unknown_currency_is_rejected() {
        let e = Money::parse("1", "XYZ").unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("currency_code"));
        assert_eq!(e.field.as_deref(), Some("currency"));
    }

    #[test]
    fn rounding_is_half_away_from_zero_in_minor_units() {
        let eur: Currency = "EUR".parse().unwrap();
        let jpy: Currency = "JPY".parse().unwrap();
        assert_eq!(eur.round(dec("0.125")), dec("0.13"));
        assert_eq!(eur.round(dec("-0.125")), dec("-0.13"));
        assert_eq!(eur.round(dec("0.124")), dec("0.12"));
        assert_eq!(jpy.round(dec("10.5")), dec("11"));
    }
}
