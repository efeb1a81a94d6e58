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
        if !phone_is_valid(&n) {
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

/// Whether `n` is a valid number: exactly the answer of `phonenumber::is_valid`, from the same
/// metadata, but with each pattern compiled once (per country calling code, on first use) instead
/// of looked up per call in the crate's shared regex cache — a mutex and a SipHash of every
/// pattern's text per lookup, most of the validity check's cost.
fn phone_is_valid(n: &phonenumber::PhoneNumber) -> bool {
    let code = n.code().value();
    let Some(slot) = CODE_RULES.get(usize::from(code)) else {
        return phonenumber::is_valid(n);
    };
    let national = n.national().to_string();
    match slot.get_or_init(|| CodeRules::build(code)) {
        CodeRules::Unknown => false,
        CodeRules::One(rules) => rules.valid(&national),
        CodeRules::Many(regions) => {
            // The crate's `source_for`: the first region whose leading digits start the number
            // or, for a region without them, whose patterns accept it, decides.
            for (leading, rules) in regions {
                match leading {
                    Some(l) if l.is_match(&national) => return rules.valid(&national),
                    Some(_) => {}
                    None if rules.valid(&national) => return true,
                    None => {}
                }
            }
            false
        }
        CodeRules::Fallback => phonenumber::is_valid(n),
    }
}

/// Country calling codes have at most three digits.
static CODE_RULES: [std::sync::OnceLock<CodeRules>; 1000] =
    [const { std::sync::OnceLock::new() }; 1000];

/// The validity rules of one country calling code.
enum CodeRules {
    /// No metadata for the code: no number is valid.
    Unknown,
    /// One region (or a non-geographic code).
    One(TypeRules),
    /// Regions sharing the code, in the metadata's order, each with its leading-digits pattern.
    Many(Vec<(Option<regex::Regex>, TypeRules)>),
    /// A pattern the regex engine would not compile here: ask the crate (never seen).
    Fallback,
}

/// A region's number patterns: the general one, and those of the types `number_type` tells apart
/// (a number is valid when it fits the general pattern and at least one type).
struct TypeRules {
    general: Matcher,
    types: Vec<Matcher>,
}

/// One descriptor: its possible lengths and its national number pattern, anchored at the start
/// (the crate accepts a match that starts at the first digit, as `find` returns the leftmost).
struct Matcher {
    lengths: Vec<u16>,
    pattern: regex::Regex,
}

impl Matcher {
    fn new(d: &phonenumber::metadata::Descriptor) -> Option<Matcher> {
        Some(Matcher {
            lengths: d.possible_length().to_vec(),
            pattern: anchored(d.national_number().as_str())?,
        })
    }

    fn is_match(&self, national: &str) -> bool {
        let len = u16::try_from(national.len()).unwrap_or(u16::MAX);
        (self.lengths.is_empty() || self.lengths.contains(&len)) && self.pattern.is_match(national)
    }
}

/// `pattern` as the crate builds it (whitespace ignored), matching only at the start of the text.
fn anchored(pattern: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(&format!("^(?:{pattern}\n)"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

impl TypeRules {
    fn new(meta: &phonenumber::Metadata) -> Option<TypeRules> {
        let d = meta.descriptors();
        // `number_type`'s order; the first match names the type, any match makes the number valid.
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        Some(TypeRules {
            general: Matcher::new(d.general())?,
            types: types
                .into_iter()
                .flatten()
                .map(Matcher::new)
                .collect::<Option<Vec<_>>>()?,
        })
    }

    fn valid(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

impl CodeRules {
    /// The rules of `code`, following the crate's `is_valid_with` and `source_for`.
    fn build(code: u16) -> CodeRules {
        let db = &*phonenumber::metadata::DATABASE;
        let Some(regions) = db.region(&code) else {
            return CodeRules::Unknown;
        };
        let built = match regions.as_slice() {
            [] => return CodeRules::Unknown,
            ["001"] => match db.by_code(&code).and_then(|m| m.into_iter().next()) {
                Some(meta) => TypeRules::new(meta).map(CodeRules::One),
                None => return CodeRules::Unknown,
            },
            [region] => match region.parse::<phonenumber::country::Id>() {
                Ok(id) => match db.by_id(id.as_ref()) {
                    Some(meta) => TypeRules::new(meta).map(CodeRules::One),
                    None => return CodeRules::Unknown,
                },
                Err(_) => return CodeRules::Unknown,
            },
            many => {
                let mut out = Vec::with_capacity(many.len());
                for region in many {
                    let Some(meta) = region
                        .parse::<phonenumber::country::Id>()
                        .ok()
                        .and_then(|id| db.by_id(id.as_ref()))
                    else {
                        // The crate cannot name such a region either.
                        return CodeRules::Fallback;
                    };
                    let leading = match meta.leading_digits() {
                        Some(l) => match anchored(l.as_str()) {
                            Some(re) => Some(re),
                            None => return CodeRules::Fallback,
                        },
                        None => None,
                    };
                    match TypeRules::new(meta) {
                        Some(rules) => out.push((leading, rules)),
                        None => return CodeRules::Fallback,
                    }
                }
                Some(CodeRules::Many(out))
            }
        };
        built.unwrap_or(CodeRules::Fallback)
    }
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

/// The first and last year a date or an instant may have: what ISO 8601's four-digit form and every
/// binding's date type can carry.
pub(crate) const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

/// Refuses a date or an instant (taken in UTC, as stored) outside the years 0001–9999, rule
/// `out_of_range`, naming the field.
pub(crate) fn check_year(year: i32, field: &str) -> Result<()> {
    if YEARS.contains(&year) {
        Ok(())
    } else {
        Err(CrmError::validation(
            field,
            "out_of_range",
            "dates and instants must lie in the years 0001 to 9999",
        ))
    }
}

/// Normalises one value of type `ty`: coercion, then phone/e-mail/decimal/date rules.
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
        (FieldType::Date, Value::Date(d)) => {
            check_year(chrono::Datelike::year(&d), field)?;
            Value::Date(d)
        }
        (FieldType::Timestamp, Value::Timestamp(t)) => {
            check_year(chrono::Datelike::year(&t), field)?;
            Value::Timestamp(t)
        }
        (FieldType::Json, Value::Json(j)) if json_depth(&j) > MAX_JSON_DEPTH => {
            return Err(CrmError::validation(
                field,
                "too_deep",
                format!("JSON values nest at most {MAX_JSON_DEPTH} levels"),
            ))
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

/// How deep a JSON field value may nest (arrays and objects): deeper values are refused, so
/// everything stored reads back (storage and audit decode JSON with a fixed depth limit).
pub const MAX_JSON_DEPTH: usize = 64;

/// How deep `j` nests, walked with an explicit stack (a scalar is depth 0).
fn json_depth(j: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(j, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            serde_json::Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
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
        if let Some(c) = l.unit_cost {
            if c.is_sign_negative() && !c.is_zero() {
                return Err(CrmError::validation(
                    f("unit_cost"),
                    "non_negative",
                    "unit cost may not be negative",
                ));
            }
            check_decimal(c, &f("unit_cost"))?;
        }
        check_decimal(gross, &f("quantity"))?;
        // Every step checked: no input overflows a decimal (each factor is bounded, but sums of
        // many lines are not).
        let d = gross
            .checked_mul(l.discount_percent)
            .map(|x| currency.round(x / hundred))
            .ok_or_else(|| overflow(f("discount_percent")))?;
        let t = gross
            .checked_sub(d)
            .and_then(|x| x.checked_mul(l.tax_rate))
            .map(|x| currency.round(x / hundred))
            .ok_or_else(|| overflow(f("tax_rate")))?;
        sub = sub
            .checked_add(gross)
            .ok_or_else(|| overflow(f("quantity")))?;
        disc = disc
            .checked_add(d)
            .ok_or_else(|| overflow(f("discount_percent")))?;
        tax = tax.checked_add(t).ok_or_else(|| overflow(f("tax_rate")))?;
    }
    let total = sub
        .checked_sub(disc)
        .and_then(|x| x.checked_add(tax))
        .ok_or_else(|| overflow("total".to_owned()))?;
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

    /// Every number of `code` derived from the metadata's examples: each example, with its last
    /// digit changed, with a digit dropped and one added, and a few digit strings of every length.
    fn numbers_around_examples(code: u16, seed: u64) -> Vec<String> {
        let db = &*phonenumber::metadata::DATABASE;
        let mut out = Vec::new();
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for meta in db.by_code(&code).unwrap_or_default() {
            let d = meta.descriptors();
            let all = [
                Some(d.general()),
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
                d.emergency(),
                d.short_code(),
                d.no_international(),
            ];
            for ex in all.into_iter().flatten().filter_map(|d| d.example()) {
                out.push(ex.to_owned());
                let mut b = ex.as_bytes().to_vec();
                if let Some(last) = b.last_mut() {
                    *last = b'0' + ((*last - b'0' + 1 + (next() % 9) as u8) % 10);
                }
                out.push(String::from_utf8(b).unwrap());
                out.push(ex[..ex.len() - 1].to_owned());
                out.push(format!("{ex}{}", next() % 10));
                out.push(format!("{}{}", next() % 10, &ex[1..]));
            }
        }
        for len in 2..=17 {
            for _ in 0..3 {
                out.push(
                    (0..len)
                        .map(|_| char::from(b'0' + (next() % 10) as u8))
                        .collect(),
                );
            }
        }
        out
    }

    #[test]
    fn phone_validity_equals_the_crate_for_every_calling_code() {
        let db = &*phonenumber::metadata::DATABASE;
        let mut codes: Vec<u16> = db.iter().map(|m| m.country_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert!(codes.len() > 200, "{}", codes.len());
        let (mut valid, mut checked) = (0, 0);
        for code in codes {
            for national in numbers_around_examples(code, u64::from(code)) {
                let Ok(n) = phonenumber::parse(None, format!("+{code}{national}")) else {
                    continue;
                };
                let want = phonenumber::is_valid(&n);
                assert_eq!(phone_is_valid(&n), want, "+{code} {national}");
                checked += 1;
                valid += usize::from(want);
            }
        }
        // Both answers occur plenty of times.
        assert!(
            valid > 1_000 && checked - valid > 1_000,
            "{valid} of {checked}"
        );
    }

    #[test]
    fn phone_validity_equals_the_crate_in_national_formats() {
        // Written nationally with a default region, including codes shared by several regions
        // (+1, +7, +44) and the normalisation path itself.
        for (region, raw) in [
            ("IT", "02 1234 5678"),
            ("IT", "347 123 4567"),
            ("IT", "06 123"),
            ("IT", "800 123 456"),
            ("US", "(415) 555-2671"),
            ("US", "(212) 555-0100"),
            ("CA", "(613) 555-0123"),
            ("CA", "(416) 234-5678"),
            ("GB", "020 7946 0018"),
            ("GB", "07700 900123"),
            ("JE", "01534 456789"),
            ("GG", "07781 123456"),
            ("RU", "8 (495) 123-45-67"),
            ("KZ", "8 (727) 123 4567"),
            ("DE", "030 123456"),
            ("FR", "01 23 45 67 89"),
            ("CH", "044 668 18 00"),
            ("BR", "(11) 96123-4567"),
            ("IN", "098765 43210"),
            ("JP", "03-1234-5678"),
        ] {
            let p = PhoneRules::for_region(region).unwrap();
            if let Ok(n) = p.parse(raw, "phone") {
                assert_eq!(
                    phone_is_valid(&n),
                    phonenumber::is_valid(&n),
                    "{region} {raw}"
                );
                assert_eq!(
                    p.normalise(raw, "phone").is_ok(),
                    phonenumber::is_valid(&n),
                    "{region} {raw}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn phone_validity_equals_the_crate_on_random_numbers(
            code in proptest::sample::select(vec![1u16, 7, 33, 39, 41, 44, 49, 55, 61, 81, 86, 91, 262, 290, 590, 599, 800, 808, 870, 882, 979]),
            national in "[0-9]{3,16}",
        ) {
            if let Ok(n) = phonenumber::parse(None, format!("+{code}{national}")) {
                proptest::prop_assert_eq!(phone_is_valid(&n), phonenumber::is_valid(&n));
            }
        }

        #[test]
        fn phone_validity_equals_the_crate_near_valid_numbers(
            code in proptest::sample::select(vec![1u16, 7, 39, 44, 49, 262, 590, 599, 800, 882]),
            pick in 0usize..10_000,
            tweak in 0usize..32,
            digit in 0u8..10,
        ) {
            let examples = numbers_around_examples(code, 7);
            let ex = &examples[pick % examples.len()];
            let mut b = ex.clone().into_bytes();
            let i = tweak % b.len().max(1);
            if i < b.len() {
                b[i] = b'0' + digit;
            }
            let national = String::from_utf8(b).unwrap();
            if let Ok(n) = phonenumber::parse(None, format!("+{code}{national}")) {
                proptest::prop_assert_eq!(phone_is_valid(&n), phonenumber::is_valid(&n), "+{} {}", code, national);
            }
        }
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

    fn date_value(ty: &FieldType, v: Value) -> Result<Value> {
        normalise_value(ty, v, "close_date", &PhoneRules::default())
    }

    #[test]
    fn dates_outside_the_years_0001_to_9999_are_refused_naming_the_field() {
        use chrono::{DateTime, NaiveDate, Utc};
        let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for bad in [
            NaiveDate::MAX,
            NaiveDate::MIN,
            ymd(-1, 12, 31),
            ymd(0, 1, 1),
            ymd(0, 12, 31),
            ymd(10000, 1, 1),
        ] {
            let e = date_value(&FieldType::Date, Value::Date(bad)).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::Validation, "{bad}");
            assert_eq!(
                (e.field.as_deref(), e.rule.as_deref()),
                (Some("close_date"), Some("out_of_range")),
                "{bad}"
            );
        }
        for good in [ymd(1, 1, 1), ymd(9999, 12, 31), ymd(2024, 2, 29)] {
            assert_eq!(
                date_value(&FieldType::Date, Value::Date(good)).unwrap(),
                Value::Date(good)
            );
        }
        // The text forms, as hosts and bindings send them.
        for bad in ["0000-01-01", "+10000-01-01", "-0001-12-31"] {
            if let Err(e) = date_value(&FieldType::Date, Value::Text(bad.into())) {
                assert!(
                    matches!(e.rule.as_deref(), Some("out_of_range" | "date_syntax")),
                    "{bad}: {e}"
                );
            } else {
                panic!("{bad} accepted");
            }
        }
        assert_eq!(
            date_value(&FieldType::Date, Value::Text("0000-01-01".into()))
                .unwrap_err()
                .rule
                .as_deref(),
            Some("out_of_range")
        );
        for good in ["0001-01-01", "9999-12-31"] {
            date_value(&FieldType::Date, Value::Text(good.into())).unwrap();
        }

        let ts = |s: i64, n: u32| DateTime::<Utc>::from_timestamp(s, n).unwrap();
        for bad in [
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::MIN_UTC,
            ts(253_402_300_800, 0), // 10000-01-01T00:00:00Z
            ts(-62_135_596_801, 0), // 0000-12-31T23:59:59Z
            ts(-62_167_219_201, 0), // year -1
            DateTime::from_timestamp_micros(i64::MAX / 2).unwrap(), // year 146 000
        ] {
            let e = date_value(&FieldType::Timestamp, Value::Timestamp(bad)).unwrap_err();
            assert_eq!(
                (e.field.as_deref(), e.rule.as_deref()),
                (Some("close_date"), Some("out_of_range")),
                "{bad}"
            );
        }
        for good in [
            ts(253_402_300_799, 999_999_999), // 9999-12-31T23:59:59.999999999Z
            ts(-62_135_596_800, 0),           // 0001-01-01T00:00:00Z
        ] {
            date_value(&FieldType::Timestamp, Value::Timestamp(good)).unwrap();
        }
        // Instants are judged in UTC: an offset that moves the instant into year 0 is refused.
        let e = date_value(
            &FieldType::Timestamp,
            Value::Text("0001-01-01T00:30:00+01:00".into()),
        )
        .unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("out_of_range"));
        date_value(
            &FieldType::Timestamp,
            Value::Text("9999-12-31T23:59:59Z".into()),
        )
        .unwrap();
        date_value(
            &FieldType::Timestamp,
            Value::Text("0001-01-01T00:00:00Z".into()),
        )
        .unwrap();
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
