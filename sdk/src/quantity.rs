//! Kubernetes resource quantities (`500m`, `1.5`, `128Mi`, `1G`, `1e3`) as
//! integers: CPU in millicores, everything else in base units.

/// Parse a quantity into its value times 1000 (millis), rounding up as
/// Kubernetes does for `MilliValue()`. `None` when it is not a quantity.
pub fn parse_millis(s: &str) -> Option<i128> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (mantissa_scale, exp10) = suffix_scale(suffix)?;
    let negative = number.starts_with('-');
    let number = number.trim_start_matches(['+', '-']);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .chars()
        .chain(frac_part.chars())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // value = digits * 10^(exp10 - frac_len) * mantissa_scale, times 1000 for millis.
    let digits: i128 = format!("{int_part}{frac_part}").parse().ok()?;
    let exp = exp10 - frac_part.len() as i32 + 3;
    let scaled = digits.checked_mul(mantissa_scale)?;
    let value = if exp >= 0 {
        scaled.checked_mul(10i128.checked_pow(exp as u32)?)?
    } else {
        let div = 10i128.checked_pow((-exp) as u32)?;
        (scaled + div - 1) / div
    };
    Some(if negative { -value } else { value })
}

/// What a quantity suffix multiplies the number by: a binary factor
/// (`Ki` = 2^10 … `Ei` = 2^60) and a power of ten (`n` = -9 … `E` = 18, or a
/// decimal exponent `e3` / `E-2`). `None` for an unknown suffix.
pub fn suffix_scale(suffix: &str) -> Option<(i128, i32)> {
    Some(match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        e if e.starts_with(['e', 'E']) => (1, e[1..].parse().ok()?),
        _ => return None,
    })
}

/// Parse a CPU quantity into millicores.
pub fn cpu_millis(s: &str) -> Option<i64> {
    parse_millis(s).and_then(|m| i64::try_from(m).ok())
}

/// Parse a memory (or any non-CPU) quantity into base units, rounding up.
pub fn bytes(s: &str) -> Option<i64> {
    parse_millis(s).and_then(|m| i64::try_from((m + 999) / 1000).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(cpu_millis("100m"), Some(100));
        assert_eq!(cpu_millis("1"), Some(1000));
        assert_eq!(cpu_millis("1.5"), Some(1500));
        assert_eq!(cpu_millis("0.1"), Some(100));
        assert_eq!(bytes("200Mi"), Some(200 * 1024 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("4Gi"), Some(4 << 30));
        assert_eq!(cpu_millis("1n"), Some(1), "rounds up like MilliValue");
        assert_eq!(cpu_millis("abc"), None);
        assert_eq!(cpu_millis("1Zi"), None);
        assert_eq!(cpu_millis(""), None);
    }
}
