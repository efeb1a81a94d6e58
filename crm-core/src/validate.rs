//! Validation and normalisation shared by every entity: one place decides what a valid value is.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::error::{CrmError, Result};
use crate::money::Money;
use crate::value::{FieldType, LineItem, Value};

/// Decimal places kept by storage for decimals and money amounts.
pub(crate) const DECIMAL_PLACES: u32 = 4;
/// Largest absolute decimal value storage keeps exactly (amount × 10⁴ must fit in 63 bits).
pub(crate) const DECIMAL_MAX: i64 = 900_000_000_000_000;

/// Phone normalisation settings.
#[derive(Debug, Clone, Copy)]
pub struct PhoneRules {
    /// The country assumed for numbers written without an international prefix.
    pub default_region: phonenumber::country::Id,
}

impl Default for PhoneRules {
    fn default() -> Self {
        PhoneRules {
            default_region: phonenumber::country::Id::IT,
        }
    }
}

impl PhoneRules {
    /// Rules with `region` (ISO 3166-1 alpha-2, e.g. `IT`) as the default country.
    pub fn for_region(region: &str) -> Result<Self> {
        let id =
            phonenumber::country::Id::from_str(&region.to_ascii_uppercase()).map_err(|_| {
                CrmError::validation(
                    "default_region",
                    "country_code",
                    format!("`{region}` is not a known country code"),
                )
            })?;
        Ok(PhoneRules { default_region: id })
    }

    /// Normalises a phone number to E.164 (`+390212345678`), whatever format it was written in:
    /// `+39 02 1234 5678`, `0039-02-12345678`, `(02) 1234 5678` with the default country.
    pub fn normalise(&self, raw: &str, field: &str) -> Result<String> {
        let n = self.parse(raw, field)?;
        if !phonenumber::is_valid(&n) {
            return Err(bad_phone(field));
        }
        Ok(e164(&n))
    }

    /// The E.164 form of a number to look up, written in any format [`PhoneRules::normalise`]
    /// accepts. Only parsed, not validated: stored numbers are valid, so a number that parses but
    /// could not be assigned simply finds nothing (the validity check is most of the cost of a
    /// lookup's normalisation). Text that is no phone number at all is still refused.
    pub fn normalise_for_lookup(&self, raw: &str, field: &str) -> Result<String> {
        Ok(e164(&self.parse(raw, field)?))
    }

    /// The number written in `raw`, read with the default country.
    fn parse(&self, raw: &str, field: &str) -> Result<phonenumber::PhoneNumber> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(bad_phone(field));
        }
        phonenumber::parse(Some(self.default_region), trimmed).map_err(|_| bad_phone(field))
    }
}

fn bad_phone(field: &str) -> CrmError {
    CrmError::validation(field, "phone_format", "not a valid phone number")
}

/// `+`, the country code and the national significant number (with its leading zeros, as Italian
/// numbers keep them): the E.164 form, without the formatter's per-call metadata lookups.
fn e164(n: &phonenumber::PhoneNumber) -> String {
    let national = n.national();
    let mut out = format!("+{}", n.code().value());
    for _ in 0..national.zeros() {
        out.push('0');
    }
    out.push_str(&national.value().to_string());
    out
}

/// Checks an e-mail address and returns it trimmed and lower-cased.
pub(crate) fn normalise_email(raw: &str, field: &str) -> Result<String> {
    let s = raw.trim().to_lowercase();
    let ok = s.len() <= 254
        && email_address::EmailAddress::from_str(&s).is_ok()
        && s.rsplit_once('@')
            .is_some_and(|(_, d)| d.contains('.') && !d.ends_with('.'));
    if ok {
        Ok(s)
    } else {
        Err(CrmError::validation(
            field,
            "email_syntax",
            "not a valid e-mail address",
        ))
    }
}

/// Checks that a decimal fits storage: at most 4 decimal places and within range.
pub(crate) fn check_decimal(d: Decimal, field: &str) -> Result<Decimal> {
    let d = d.normalize();
    if d.scale() > DECIMAL_PLACES {
        return Err(CrmError::validation(
            field,
            "decimal_scale",
            format!("at most {DECIMAL_PLACES} decimal places are kept"),
        ));
    }
    if d.abs() >= Decimal::from(DECIMAL_MAX) {
        return Err(CrmError::validation(field, "range", "value out of range"));
    }
    Ok(d)
}

/// Normalises one value of type `ty`: coercion, then phone/e-mail/decimal rules.
pub(crate) fn normalise_value(
    ty: &FieldType,
    v: Value,
    field: &str,
    phones: &PhoneRules,
) -> Result<Value> {
    let v = v.coerce(ty, field)?;
    Ok(match (ty, v) {
        (FieldType::Email, Value::Text(s)) => Value::Text(normalise_email(&s, field)?),
        (FieldType::Phone, Value::Text(s)) => Value::Text(phones.normalise(&s, field)?),
        (FieldType::Decimal, Value::Decimal(d)) => Value::Decimal(check_decimal(d, field)?),
        (FieldType::Money, Value::Money(m)) => {
            Value::Money(Money::new(check_decimal(m.amount, field)?, m.currency))
        }
        (FieldType::Text, Value::Text(s)) if s.len() > 10_000 => {
            return Err(CrmError::validation(
                field,
                "max_length",
                "text longer than 10 000 characters",
            ))
        }
        (_, v) => v,
    })
}

/// Totals of line items, each amount rounded to the currency's minor unit, half away from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Sum of quantity × unit price, per line rounded.
    pub subtotal: Money,
    /// Sum of line discounts.
    pub discount: Money,
    /// Sum of line taxes (on the discounted amount).
    pub tax: Money,
    /// subtotal − discount + tax.
    pub total: Money,
}

/// Checks line items and computes totals in `currency`.
///
/// Per line: `gross = round(quantity × unit_price)`, `discount = round(gross × discount% / 100)`,
/// `tax = round((gross − discount) × tax_rate% / 100)`; the document sums the rounded line amounts.
pub fn line_totals(lines: &[LineItem], currency: crate::money::Currency) -> Result<Totals> {
    let hundred = Decimal::from(100);
    let mut sub = Decimal::ZERO;
    let mut disc = Decimal::ZERO;
    let mut tax = Decimal::ZERO;
    let overflow = |f: String| CrmError::validation(f, "range", "amount out of range");
    for (i, l) in lines.iter().enumerate() {
        let f = |name: &str| format!("lines[{i}].{name}");
        if l.quantity.is_sign_negative() && !l.quantity.is_zero() {
            return Err(CrmError::validation(
                f("quantity"),
                "non_negative",
                "quantity may not be negative",
            ));
        }
        if l.unit_price.is_sign_negative() && !l.unit_price.is_zero() {
            return Err(CrmError::validation(
                f("unit_price"),
                "non_negative",
                "unit price may not be negative",
            ));
        }
        if l.discount_percent < Decimal::ZERO || l.discount_percent > hundred {
            return Err(CrmError::validation(
                f("discount_percent"),
                "discount_range",
                "discount must be between 0 and 100 percent",
            ));
        }
        if l.tax_rate < Decimal::ZERO || l.tax_rate > hundred {
            return Err(CrmError::validation(
                f("tax_rate"),
                "tax_range",
                "tax rate must be between 0 and 100 percent",
            ));
        }
        for (name, d) in [("quantity", l.quantity), ("unit_price", l.unit_price)] {
            check_decimal(d, &f(name))?;
        }
        let gross = currency.round(
            l.quantity
                .checked_mul(l.unit_price)
                .ok_or_else(|| overflow(f("quantity")))?,
        );
        let d = currency.round(gross * l.discount_percent / hundred);
        let t = currency.round((gross - d) * l.tax_rate / hundred);
        sub += gross;
        disc += d;
        tax += t;
    }
    let total = sub - disc + tax;
    check_decimal(total, "total")?;
    Ok(Totals {
        subtotal: Money::new(sub, currency),
        discount: Money::new(disc, currency),
        tax: Money::new(tax, currency),
        total: Money::new(total, currency),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_e164_form_equals_the_formatter_and_lookups_parse_without_validating() {
        for (region, raw) in [
            ("IT", "02 1234 5678"),
            ("IT", "+39 06 1234567"),
            ("IT", "347 123 4567"),
            ("IT", "0039 02 12345678"),
            ("US", "(415) 555-2671"),
            ("DE", "030 123456"),
            ("GB", "020 7946 0018"),
            ("FR", "01 23 45 67 89"),
        ] {
            let id = phonenumber::country::Id::from_str(region).unwrap();
            let n = phonenumber::parse(Some(id), raw).unwrap();
            let want = n.format().mode(phonenumber::Mode::E164).to_string();
            assert_eq!(e164(&n), want, "{raw}");
            let p = PhoneRules::for_region(region).unwrap();
            assert_eq!(p.normalise_for_lookup(raw, "phone").unwrap(), want, "{raw}");
        }
        let p = PhoneRules::for_region("IT").unwrap();
        assert!(p.normalise_for_lookup("not a number", "phone").is_err());
        assert!(p.normalise_for_lookup("  ", "phone").is_err());
    }

    #[test]
    fn phones_normalise_to_e164_whatever_the_format() {
        let p = PhoneRules::default();
        for raw in [
            "+39 02 1234 5678",
            "0039-02-12345678",
            "(02) 1234 5678",
            "02 12345678",
        ] {
            assert_eq!(p.normalise(raw, "phone").unwrap(), "+390212345678", "{raw}");
        }
        let e = p.normalise("12", "phone").unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.rule.as_deref()),
            (Some("phone"), Some("phone_format"))
        );
        let us = PhoneRules::for_region("us").unwrap();
        assert_eq!(us.normalise("(212) 555-0100", "p").unwrap(), "+12125550100");
    }

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(
            normalise_email(" Mario.Rossi@Example.IT ", "email").unwrap(),
            "mario.rossi@example.it"
        );
        for bad in ["mario", "mario@", "@x.it", "a b@x.it", "mario@localhost"] {
            let e = normalise_email(bad, "email").unwrap_err();
            assert_eq!(e.rule.as_deref(), Some("email_syntax"), "{bad}");
        }
    }

    #[test]
    fn decimals_keep_four_places() {
        assert_eq!(check_decimal(d("1.23450"), "x").unwrap(), d("1.2345"));
        assert_eq!(
            check_decimal(d("1.23456"), "x")
                .unwrap_err()
                .rule
                .as_deref(),
            Some("decimal_scale")
        );
    }

    #[test]
    fn line_totals_round_per_line_half_away_from_zero() {
        let eur: Currency = "EUR".parse().unwrap();
        let lines = vec![
            LineItem {
                product_id: None,
                description: "a".into(),
                quantity: d("3"),
                unit_price: d("0.335"),
                discount_percent: d("10"),
                tax_rate: d("22"),
                unit_cost: None,
            },
            LineItem {
                product_id: None,
                description: "b".into(),
                quantity: d("1"),
                unit_price: d("100"),
                discount_percent: d("12.5"),
                tax_rate: d("0"),
                unit_cost: None,
            },
        ];
        let t = line_totals(&lines, eur).unwrap();
        // line a: gross 1.005 → 1.01; discount 0.101 → 0.10; tax (0.91 × 22%) 0.2002 → 0.20
        // line b: gross 100.00; discount 12.50; tax 0
        assert_eq!(t.subtotal.amount, d("101.01"));
        assert_eq!(t.discount.amount, d("12.60"));
        assert_eq!(t.tax.amount, d("0.20"));
        assert_eq!(t.total.amount, d("88.61"));
    }

    #[test]
    fn line_rules_name_the_line_and_field() {
        let eur: Currency = "EUR".parse().unwrap();
        let mut l = LineItem {
            product_id: None,
            description: String::new(),
            quantity: d("-1"),
            unit_price: d("1"),
            discount_percent: d("0"),
            tax_rate: d("0"),
            unit_cost: None,
        };
        let e = line_totals(&[l.clone()], eur).unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.rule.as_deref()),
            (Some("lines[0].quantity"), Some("non_negative"))
        );
        l.quantity = d("1");
        l.discount_percent = d("101");
        let e = line_totals(&[l], eur).unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("discount_range"));
    }
}
