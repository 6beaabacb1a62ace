//! Kubernetes' quantity library (kubernetes/apiserver
//! `pkg/cel/library/quantity.go`, Kubernetes 1.28+): `quantity`,
//! `isQuantity`, and the members `isInteger`, `asInteger`,
//! `asApproximateFloat`, `sign`, `add`, `sub`, `isGreaterThan`, `isLessThan`
//! and `compareTo`. `==` compares values (`200M == 0.2G`).
//!
//! Parsing follows apimachinery's `resource.ParseQuantity`: a signed decimal
//! number, then a decimal SI suffix (`n u m k M G T P E`), a binary one
//! (`Ki Mi Gi Ti Pi Ei`) or a decimal exponent (`e3`, `E-2`). Values are
//! exact decimals (`mantissa × 10^scale`, 128-bit mantissa); a value whose
//! mantissa does not fit is rejected as too large.

use std::cmp::Ordering;

use cel::common::types::{CelDouble, CelInt, INT_TYPE, STRING_TYPE, Type};
use cel::common::value::CowVal;
use cel::{DeclarationError, Env, ExecutionError};

use super::{Returned, boolean, fail, int, opaque_type, take, text};

/// A `kubernetes.Quantity`: `mantissa × 10^scale`, normalised so that the
/// mantissa has no trailing zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    scale: i32,
}
opaque_type!(Quantity, QUANTITY_TYPE, "kubernetes.Quantity");

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scale >= 0 {
            write!(f, "{}", self.mantissa)?;
            (0..self.scale).try_for_each(|_| f.write_str("0"))
        } else {
            let digits = self.mantissa.unsigned_abs().to_string();
            let point = self.scale.unsigned_abs() as usize;
            let sign = if self.mantissa < 0 { "-" } else { "" };
            if digits.len() > point {
                let (a, b) = digits.split_at(digits.len() - point);
                write!(f, "{sign}{a}.{b}")
            } else {
                write!(f, "{sign}0.{}{digits}", "0".repeat(point - digits.len()))
            }
        }
    }
}

impl Quantity {
    fn new(mantissa: i128, scale: i32) -> Self {
        let (mut mantissa, mut scale) = (mantissa, scale);
        if mantissa == 0 {
            return Quantity {
                mantissa: 0,
                scale: 0,
            };
        }
        while mantissa % 10 == 0 {
            mantissa /= 10;
            scale += 1;
        }
        Quantity { mantissa, scale }
    }

    /// Parse a quantity string.
    pub fn parse(s: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {s:?}"
            )
        };
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let number_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let number = &s[number_start..i];
        let suffix = &s[i..];
        if number.is_empty() || number.matches('.').count() > 1 || number == "." {
            return Err(invalid());
        }
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = format!("{whole}{frac}");
        let mut mantissa: i128 = 0;
        let mut scale = -(frac.len() as i32);
        for d in digits.bytes() {
            match mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(d - b'0')))
            {
                Some(m) => mantissa = m,
                // Too many digits: drop the least significant ones.
                None => scale += 1,
            }
        }
        if negative {
            mantissa = -mantissa;
        }
        let (binary, exponent) = tollgate_sdk::quantity::suffix_scale(suffix).ok_or_else(|| {
            if suffix.starts_with(['e', 'E'])
                || !suffix.bytes().all(|b| {
                    b"eEinumkKMGTP".contains(&b) || b.is_ascii_digit() || b == b'-' || b == b'+'
                })
            {
                invalid()
            } else {
                "unable to parse quantity's suffix".to_owned()
            }
        })?;
        let mantissa = mantissa
            .checked_mul(binary)
            .ok_or_else(|| "quantity is too large".to_owned())?;
        let scale = scale
            .checked_add(exponent)
            .ok_or_else(|| "quantity is too large".to_owned())?;
        Ok(Quantity::new(mantissa, scale))
    }

    /// Both mantissas at the smaller scale, when that fits.
    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i32)> {
        let scale = self.scale.min(other.scale);
        let up = |q: &Quantity| -> Option<i128> {
            let shift = u32::try_from(q.scale - scale).ok()?;
            q.mantissa.checked_mul(10i128.checked_pow(shift)?)
        };
        Some((up(self)?, up(other)?, scale))
    }

    fn approximate(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.scale)
    }

    fn compare(&self, other: &Quantity) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            None => self
                .approximate()
                .partial_cmp(&other.approximate())
                .unwrap_or(Ordering::Equal),
        }
    }

    fn add(&self, other: &Quantity) -> Result<Quantity, String> {
        let (a, b, scale) = self.aligned(other).ok_or("quantity arithmetic overflow")?;
        Ok(Quantity::new(
            a.checked_add(b).ok_or("quantity arithmetic overflow")?,
            scale,
        ))
    }

    fn as_integer(&self) -> Option<i64> {
        if self.scale < 0 {
            return None;
        }
        let factor = 10i128.checked_pow(self.scale as u32)?;
        i64::try_from(self.mantissa.checked_mul(factor)?).ok()
    }
}

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(Type::to_owned(&QUANTITY_TYPE))?;
    let q = || Type::to_owned(&QUANTITY_TYPE);
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    env.add_member_overload("isInteger", "quantity_is_integer", q(), vec![], is_integer)?;
    env.add_member_overload("asInteger", "quantity_as_integer", q(), vec![], as_integer)?;
    env.add_member_overload(
        "asApproximateFloat",
        "quantity_as_float",
        q(),
        vec![],
        as_float,
    )?;
    env.add_member_overload("sign", "quantity_sign", q(), vec![], sign)?;
    env.add_member_overload("add", "quantity_add_quantity", q(), vec![q()], add)?;
    env.add_member_overload("add", "quantity_add_int", q(), vec![INT_TYPE], add)?;
    env.add_member_overload("sub", "quantity_sub_quantity", q(), vec![q()], sub)?;
    env.add_member_overload("sub", "quantity_sub_int", q(), vec![INT_TYPE], sub)?;
    env.add_member_overload(
        "isGreaterThan",
        "quantity_is_greater_than",
        q(),
        vec![q()],
        is_greater,
    )?;
    env.add_member_overload(
        "isLessThan",
        "quantity_is_less_than",
        q(),
        vec![q()],
        is_less,
    )?;
    env.add_member_overload(
        "compareTo",
        "quantity_compare_to",
        q(),
        vec![q()],
        compare_to,
    )?;
    Ok(())
}

fn the(val: &CowVal<'_, '_>) -> Result<Quantity, ExecutionError> {
    if let Some(q) = val.downcast_ref::<Quantity>() {
        return Ok(*q);
    }
    if let Some(i) = val.downcast_ref::<CelInt>() {
        return Ok(Quantity::new(i128::from(*i.inner()), 0));
    }
    Quantity::parse(text(val.as_ref())?).map_err(|e| fail("quantity", e))
}

fn quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    Ok(CowVal::owned(the(&s)?))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s] = take(args)?;
    boolean(Quantity::parse(text(s.as_ref())?).is_ok())
}

fn is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [q] = take(args)?;
    boolean(the(&q)?.as_integer().is_some())
}

fn as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [q] = take(args)?;
    let q = the(&q)?;
    match q.as_integer() {
        Some(i) => int(i),
        None => Err(fail(
            "asInteger",
            format!(
                "cannot convert value to integer: {q} is not an integer or does not fit in int64"
            ),
        )),
    }
}

fn as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [q] = take(args)?;
    Ok(CowVal::owned(CelDouble::from(the(&q)?.approximate())))
}

fn sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [q] = take(args)?;
    int(the(&q)?.mantissa.signum() as i64)
}

fn add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    let sum = the(&a)?.add(&the(&b)?).map_err(|e| fail("add", e))?;
    Ok(CowVal::owned(sum))
}

fn sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    let b = the(&b)?;
    let negated = Quantity::new(-b.mantissa, b.scale);
    let difference = the(&a)?.add(&negated).map_err(|e| fail("sub", e))?;
    Ok(CowVal::owned(difference))
}

fn is_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    boolean(the(&a)?.compare(&the(&b)?) == Ordering::Greater)
}

fn is_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    boolean(the(&a)?.compare(&the(&b)?) == Ordering::Less)
}

fn compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [a, b] = take(args)?;
    int(match the(&a)?.compare(&the(&b)?) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares_exactly() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert_eq!(q("200M"), q("0.2G"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("-1.5m").to_string(), "-0.0015");
        assert_eq!(q("50M").compare(&q("50Mi")), Ordering::Less);
        assert_eq!(q("12Mi").as_integer(), Some(12 << 20));
        assert_eq!(q("1m").as_integer(), None);
        for bad in ["", ".", "10Mo", "200K", "Mi", "1.2.3", "--1"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }
}
