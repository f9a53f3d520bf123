//! Parsers for values as RouterOS prints them on the API. They never panic and return `None`
//! for anything they do not understand.

/// Seconds in a RouterOS duration: `3d19h41m32s`, `2w3d`, `250ms`, `1h`, or `HH:MM:SS`.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.contains(':') {
        let mut total: u64 = 0;
        for part in s.split(':') {
            let n: u64 = part.parse().ok()?;
            total = total.checked_mul(60)?.checked_add(n)?;
        }
        return Some(total);
    }
    let mut total_ms: u64 = 0;
    let mut number: Option<u64> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(d) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
            continue;
        }
        let n = number.take()?;
        let unit_ms: u64 = match c {
            'w' => 7 * 86_400_000,
            'd' => 86_400_000,
            'h' => 3_600_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            's' => 1000,
            'u' if chars.peek() == Some(&'s') => {
                chars.next();
                0
            }
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(unit_ms)?)?;
    }
    if number.is_some() {
        return None; // trailing number without a unit
    }
    Some(total_ms / 1000)
}

/// A non-negative integer counter.
pub fn parse_u64(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// A decimal number such as `24.1`.
pub fn parse_f64(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A signal strength in dBm: `-58`, `-63@HT20-7`, `-67@5GHz`.
pub fn parse_signal_dbm(s: &str) -> Option<i32> {
    let head = s.split('@').next()?.trim();
    head.parse::<i32>().ok().filter(|v| (-150..=30).contains(v))
}

/// RouterOS booleans: `true`/`false` (v6.43+), `yes`/`no` (very old versions).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_routeros_prints_them() {
        assert_eq!(
            parse_duration_secs("3d19h41m32s"),
            Some(3 * 86400 + 19 * 3600 + 41 * 60 + 32)
        );
        assert_eq!(
            parse_duration_secs("2w3d4h5m6s"),
            Some(17 * 86400 + 4 * 3600 + 5 * 60 + 6)
        );
        assert_eq!(parse_duration_secs("1h"), Some(3600));
        assert_eq!(parse_duration_secs("250ms"), Some(0));
        assert_eq!(parse_duration_secs("1m500ms"), Some(60));
        assert_eq!(parse_duration_secs("00:01:05"), Some(65));
        assert_eq!(parse_duration_secs("0s"), Some(0));
        for bad in ["", "abc", "5", "5x", "-3s", "h", "99999999999999999999w"] {
            assert_eq!(parse_duration_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn signals_in_both_formats() {
        assert_eq!(parse_signal_dbm("-58"), Some(-58));
        assert_eq!(parse_signal_dbm("-63@HT20-7"), Some(-63));
        assert_eq!(parse_signal_dbm("-67@5GHz"), Some(-67));
        assert_eq!(parse_signal_dbm(""), None);
        assert_eq!(parse_signal_dbm("-9999"), None);
    }

    #[test]
    fn counters_refuse_negative_and_garbage() {
        assert_eq!(parse_u64("918273645512"), Some(918_273_645_512));
        assert_eq!(parse_u64("-5"), None);
        assert_eq!(parse_u64("1e9"), None);
        assert_eq!(parse_bool("yes"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_duration_secs(&s);
            let _ = parse_signal_dbm(&s);
            let _ = parse_f64(&s);
        }
    }
}
