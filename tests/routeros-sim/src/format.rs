//! Value formats as RouterOS prints them on the API: durations (`1w2d3h4m5s`), dates
//! (`2026-03-20 08:15:42`, 7.10+), MAC addresses, and duration parsing for `=interval=`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch, now.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `1w2d3h4m5s` with zero units left out; `0s` for zero.
pub(crate) fn duration(secs: u64) -> String {
    let units = [
        (604_800, 'w'),
        (86_400, 'd'),
        (3_600, 'h'),
        (60, 'm'),
        (1, 's'),
    ];
    let mut rest = secs;
    let mut out = String::new();
    for (size, unit) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push(unit);
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for a unix time in seconds.
pub(crate) fn date_time(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `48:A9:8A:1C:2B:3D`.
pub(crate) fn mac(bytes: [u8; 6]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a RouterOS duration such as `1s`, `250ms`, `1m30s` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                Duration::from_millis(n)
            }
            'w' => Duration::from_secs(n.checked_mul(604_800)?),
            'd' => Duration::from_secs(n.checked_mul(86_400)?),
            'h' => Duration::from_secs(n.checked_mul(3_600)?),
            'm' => Duration::from_secs(n.checked_mul(60)?),
            's' => Duration::from_secs(n),
            _ => return None,
        };
        total = total.checked_add(unit)?;
    }
    if !number.is_empty() {
        return None;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_routeros() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(329_492), "3d19h31m32s");
        assert_eq!(
            duration(604_800 + 86_400 * 2 + 3 * 3600 + 4 * 60 + 5),
            "1w2d3h4m5s"
        );
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn dates_print_like_routeros_7() {
        assert_eq!(date_time(0), "1970-01-01 00:00:00");
        assert_eq!(date_time(1_774_000_542), "2026-03-20 09:55:42");
        assert_eq!(
            mac([0x48, 0xA9, 0x8A, 0x1C, 0x2B, 0x3D]),
            "48:A9:8A:1C:2B:3D"
        );
    }
}
