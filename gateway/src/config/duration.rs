//! Duration (`500ms`, `60s`, `1h30m`, `2d`) and byte-size (`4MiB`, `10MB`) strings.
//!
//! A bare integer is seconds for a duration and bytes for a size. Units of a
//! duration go from largest to smallest, each at most once (`1h30m`, not `30m1h`).

use std::time::Duration;

/// Why a duration or size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum QuantityError {
    /// Nothing but whitespace.
    #[error("empty value")]
    Empty,
    /// A leading `-`.
    #[error("negative values are not allowed")]
    Negative,
    /// A unit or other text where a number was expected.
    #[error("expected a number at {0:?}")]
    MissingNumber(String),
    /// `1h30`: a number with no unit after an earlier component.
    #[error("missing unit after {0}; write e.g. {0}m or {0}s")]
    MissingUnit(u64),
    /// `1.5s`.
    #[error("fractions are not supported; use a smaller unit (e.g. 1500ms instead of 1.5s)")]
    Fraction,
    /// A unit that is not in the table.
    #[error("unknown unit {unit:?}; use one of {allowed}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The units that are accepted.
        allowed: &'static str,
    },
    /// `30m1h` or `5m5m`.
    #[error("unit {0:?} is repeated or out of order; write larger units first, e.g. 1h30m")]
    UnitOrder(String),
    /// Larger than the value can hold.
    #[error("value is too large")]
    Overflow,
}

const DURATION_UNITS: &str = "ms, s, m, h, d";
const SIZE_UNITS: &str = "B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)";

/// Parses a duration: `500ms`, `60s`, `5m`, `1h30m`, `2d`, or bare seconds (`60`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, QuantityError> {
    let text = text.trim();
    let rest = check_sign(text)?;
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = rest.parse().map_err(|_| QuantityError::Overflow)?;
        return Ok(Duration::from_secs(secs));
    }
    let mut total_ms: u64 = 0;
    let mut last_rank = usize::MAX;
    let mut rest = rest;
    while !rest.is_empty() {
        let (number, after) = split_number(rest)?;
        let after = after.trim_start();
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c.is_whitespace()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(QuantityError::MissingUnit(number));
        }
        let (rank, unit_ms) = match unit {
            "ms" => (0, 1),
            "s" => (1, 1_000),
            "m" => (2, 60_000),
            "h" => (3, 3_600_000),
            "d" => (4, 86_400_000),
            _ => return Err(QuantityError::UnknownUnit { unit: unit.to_owned(), allowed: DURATION_UNITS }),
        };
        if rank >= last_rank {
            return Err(QuantityError::UnitOrder(unit.to_owned()));
        }
        last_rank = rank;
        total_ms =
            number.checked_mul(unit_ms).and_then(|ms| ms.checked_add(total_ms)).ok_or(QuantityError::Overflow)?;
        rest = after.trim_start();
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses a byte size: `4194304`, `512KiB`, `4MiB`, `10MB` (unit case-insensitive; `Ki`/`Mi` also work).
pub(super) fn parse_size(text: &str) -> Result<u64, QuantityError> {
    let text = check_sign(text.trim())?;
    let (number, unit) = split_number(text)?;
    let multiplier: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(QuantityError::UnknownUnit { unit: unit.trim().to_owned(), allowed: SIZE_UNITS }),
    };
    number.checked_mul(multiplier).ok_or(QuantityError::Overflow)
}

fn check_sign(text: &str) -> Result<&str, QuantityError> {
    if text.is_empty() {
        Err(QuantityError::Empty)
    } else if text.starts_with('-') {
        Err(QuantityError::Negative)
    } else {
        Ok(text.strip_prefix('+').unwrap_or(text))
    }
}

/// Splits leading ASCII digits off `text` and parses them.
fn split_number(text: &str) -> Result<(u64, &str), QuantityError> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits == 0 {
        return Err(QuantityError::MissingNumber(text.to_owned()));
    }
    let (number, rest) = text.split_at(digits);
    if rest.starts_with('.') {
        return Err(QuantityError::Fraction);
    }
    let number = number.parse().map_err(|_| QuantityError::Overflow)?;
    Ok((number, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("60s"), Ok(secs(60)));
        assert_eq!(parse_duration("5m"), Ok(secs(300)));
        assert_eq!(parse_duration("1h"), Ok(secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(secs(172_800)));
        assert_eq!(parse_duration("1m30s250ms"), Ok(Duration::from_millis(90_250)));
        assert_eq!(parse_duration(" 42 "), Ok(secs(42)));
        assert_eq!(parse_duration("0"), Ok(secs(0)));
        assert_eq!(parse_duration("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("5 s"), Ok(secs(5)));
    }

    #[test]
    fn bad_durations() {
        assert_eq!(parse_duration(""), Err(QuantityError::Empty));
        assert_eq!(parse_duration("-5s"), Err(QuantityError::Negative));
        assert_eq!(parse_duration("abc"), Err(QuantityError::MissingNumber("abc".into())));
        assert_eq!(parse_duration("1h30"), Err(QuantityError::MissingUnit(30)));
        assert_eq!(parse_duration("1.5s"), Err(QuantityError::Fraction));
        assert!(matches!(parse_duration("10us"), Err(QuantityError::UnknownUnit { unit, .. }) if unit == "us"));
        assert!(
            matches!(parse_duration("10 minutes"), Err(QuantityError::UnknownUnit { unit, .. }) if unit == "minutes")
        );
        assert_eq!(parse_duration("30m1h"), Err(QuantityError::UnitOrder("h".into())));
        assert_eq!(parse_duration("5m5m"), Err(QuantityError::UnitOrder("m".into())));
        assert_eq!(parse_duration("99999999999999999999"), Err(QuantityError::Overflow));
        assert_eq!(parse_duration("999999999999999d"), Err(QuantityError::Overflow));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("2 gib"), Ok(2 << 30));
        assert_eq!(parse_size("8Mi"), Ok(8 << 20));
        assert_eq!(parse_size("7B"), Ok(7));
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(parse_size("MiB"), Err(QuantityError::MissingNumber("MiB".into())));
        assert!(matches!(parse_size("4XB"), Err(QuantityError::UnknownUnit { unit, .. }) if unit == "XB"));
        assert_eq!(parse_size("1.5MiB"), Err(QuantityError::Fraction));
        assert_eq!(parse_size("-1"), Err(QuantityError::Negative));
        assert_eq!(parse_size("99999999TiB"), Err(QuantityError::Overflow));
        let msg = parse_size("4 furlongs").unwrap_err().to_string();
        assert!(msg.contains("KiB"), "{msg}");
    }
}
