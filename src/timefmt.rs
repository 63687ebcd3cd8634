//! Times and durations as Kapacitor's Go templates print them, for the
//! message templates' `time` and `duration`: RFC 3339 in UTC, and Go's
//! `time.Duration.String()` (`5m0s`); and durations as people write them
//! in settings (`1h30m`). Written out here because the component
//! carries no date crate.

/// `2026-11-26T18:21:56Z`, with the nanoseconds when there are any and
/// their trailing zeros dropped (Go's `time.RFC3339Nano`).
pub fn rfc3339(seconds: i64, nanoseconds: u32) -> String {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let frac = fraction(u64::from(nanoseconds.min(999_999_999)), 9);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{frac}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in nanoseconds as Go prints it: `0s`, `1.5ms`, `42s`,
/// `5m0s`, `1h2m3.5s`, `-2s`.
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut u = nanos.unsigned_abs();
    let text = if u < 1_000_000_000 {
        let (unit, digits) = match u {
            0..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        let scale = 10u64.pow(digits);
        format!("{}{}{unit}", u / scale, fraction(u % scale, digits))
    } else {
        let frac = fraction(u % 1_000_000_000, 9);
        u /= 1_000_000_000;
        let seconds = format!("{}{frac}s", u % 60);
        let minutes = u / 60;
        match (minutes / 60, minutes % 60) {
            (0, 0) => seconds,
            (0, m) => format!("{m}m{seconds}"),
            (h, m) => format!("{h}h{m}m{seconds}"),
        }
    };
    if nanos < 0 {
        format!("-{text}")
    } else {
        text
    }
}

/// `.5` for 500 of 3 digits; empty for zero.
fn fraction(value: u64, digits: u32) -> String {
    if value == 0 || digits == 0 {
        return String::new();
    }
    let padded = format!("{value:0width$}", width = digits as usize);
    format!(".{}", padded.trim_end_matches('0'))
}

/// `1h`, `30m`, `1d`, `1h30m`: seconds (Go's units, and Kapacitor's `d`).
pub fn seconds(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    (number.is_empty() && total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        let s = 1_000_000_000i64;
        for (nanos, go) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (s, "1s"),
            (s + s / 2, "1.5s"),
            (42 * s, "42s"),
            (300 * s, "5m0s"),
            (3600 * s, "1h0m0s"),
            (3723 * s + s / 2, "1h2m3.5s"),
            (-2 * s, "-2s"),
            (100 * 3600 * s, "100h0m0s"),
        ] {
            assert_eq!(go_duration(nanos), go, "{nanos}");
        }
        // Does not overflow at the ends.
        assert!(go_duration(i64::MIN).starts_with('-'));
        assert!(go_duration(i64::MAX).ends_with('s'));
    }

    #[test]
    fn times_print_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_181_316, 0), "2025-11-26T18:21:56Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(1_500_000_000, 120_000_000),
            "2017-07-14T02:40:00.12Z"
        );
        assert_eq!(rfc3339(-1, 0), "1969-12-31T23:59:59Z");
        // No panic at the ends of the range.
        let _ = rfc3339(i64::MIN, u32::MAX);
        let _ = rfc3339(i64::MAX, 0);
    }

    #[test]
    fn durations_are_go_units_and_days() {
        assert_eq!(seconds("1h"), Some(3_600));
        assert_eq!(seconds("1h30m"), Some(5_400));
        assert_eq!(seconds("1d"), Some(86_400));
        assert_eq!(seconds("90s"), Some(90));
        assert_eq!(seconds("1"), None);
        assert_eq!(seconds("0h"), None);
        assert_eq!(seconds("1y"), None);
    }
}
