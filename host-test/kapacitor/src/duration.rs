//! Durations as Kapacitor writes them, in nanoseconds: Go's
//! (`time.ParseDuration`: `24h`, `1h30m`, `500ms`), for an aggregate's
//! `interval`; and TICKscript's, which adds `u`, `d` and `w`, for `match`
//! expressions' duration literals. Whole numbers only, no sign: what these
//! formats use.
//!
//! The units are one table; how Go prints a duration (`24h0m0s`) is the
//! guest's `slack_alert_handler::timefmt::go_duration`.

/// Go's duration units.
const GO_UNITS: [(&str, i64); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// The units TICKscript takes beyond Go's.
const TICK_EXTRA_UNITS: [(&str, i64); 3] = [
    ("u", 1_000),
    ("d", 86_400_000_000_000),
    ("w", 604_800_000_000_000),
];

/// A Go duration (`24h`, `1h30m`, `90s`, `500ms`), surrounding blanks
/// ignored, or `None` if it is not one or does not fit.
pub fn parse_go(text: &str) -> Option<u64> {
    sum_of_units(text.trim(), &GO_UNITS).and_then(|n| u64::try_from(n).ok())
}

/// A TICKscript duration literal (`10s`, `1h30m`, `500ms`, `2d`, `1w`), or
/// `None` if it is not one or does not fit.
pub fn parse_tick(word: &str) -> Option<i64> {
    sum_of_units(word, GO_UNITS.iter().chain(&TICK_EXTRA_UNITS))
}

/// Numbers each followed by a unit (`1h30m`), summed in nanoseconds. At
/// each step the longest unit that fits is taken, so `ms` is not `m`
/// followed by garbage.
fn sum_of_units<'a>(
    word: &str,
    units: impl IntoIterator<Item = &'a (&'a str, i64)> + Clone,
) -> Option<i64> {
    if word.is_empty() {
        return None;
    }
    let mut rest = word;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = units
            .clone()
            .into_iter()
            .filter(|(unit, _)| rest.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())?;
        total = total.checked_add(n.checked_mul(*scale)?)?;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_sum_their_parts() {
        assert_eq!(parse_go("24h"), Some(86_400_000_000_000));
        assert_eq!(parse_go("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go(" 90s "), Some(90_000_000_000));
        assert_eq!(parse_go("500ms"), Some(500_000_000));
        assert_eq!(parse_go("2us"), Some(2_000));
        assert_eq!(parse_go("2µs"), Some(2_000));
        assert_eq!(parse_go("7ns"), Some(7));
        assert_eq!(parse_go("0s"), Some(0));
    }

    #[test]
    fn go_has_no_days_weeks_or_bare_u() {
        assert_eq!(parse_go("1d"), None);
        assert_eq!(parse_go("1w"), None);
        assert_eq!(parse_go("5u"), None);
    }

    #[test]
    fn tickscript_adds_u_days_and_weeks() {
        assert_eq!(parse_tick("5u"), Some(5_000));
        assert_eq!(parse_tick("2d"), Some(172_800_000_000_000));
        assert_eq!(parse_tick("1w"), Some(604_800_000_000_000));
        assert_eq!(parse_tick("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_tick("10ms"), Some(10_000_000));
        assert_eq!(parse_tick("3us"), Some(3_000));
    }

    #[test]
    fn what_is_not_a_duration_is_none() {
        for text in ["", "h", "1", "1 day", "1.5h", "-1h", "1hx", "1x"] {
            assert_eq!(parse_go(text), None, "{text:?}");
            assert_eq!(parse_tick(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_duration_that_overflows_is_none() {
        assert_eq!(parse_go("9999999999999h"), None);
        assert_eq!(parse_tick("99999999999999999999s"), None);
    }
}
