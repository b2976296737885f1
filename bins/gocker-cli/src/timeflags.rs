//! docker's time flags: `system prune --filter until=`, `logs --since/--until`. One parser:
//! a Go duration before now (`10m`, `1h30m`), Unix seconds (`1700000000[.5]`), or RFC 3339 (a
//! date and time with or without a zone, or a date; no zone is UTC). A leaf.

/// A Go duration (`24h`, `1h30m`, `90s`, `1.5h`, `500ms`) in seconds, rounded down.
pub(crate) fn go_duration(s: &str) -> Option<f64> {
    let mut rest = s;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let v: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += v * unit;
        rest = &rest[u..];
    }
    Some(total)
}

/// A time flag's value ([the module's forms](self)) as nanoseconds since the Unix epoch, `now_ns`
/// being the current time in nanoseconds (for durations).
pub(crate) fn parse_instant(v: &str, now_ns: i128) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    if let Some(d) = go_duration(v) {
        return Some(now_ns - (d * 1e9).round() as i128);
    }
    if let Some(ns) = unix_seconds(v) {
        return Some(ns);
    }
    let ns = |t: time::OffsetDateTime| Some(t.unix_timestamp_nanos());
    if let Ok(t) = time::OffsetDateTime::parse(v, &Rfc3339) {
        return ns(t);
    }
    // A date and time without a zone: UTC.
    if let Ok(t) = time::OffsetDateTime::parse(&format!("{v}Z"), &Rfc3339) {
        return ns(t);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v, date)
        .ok()
        .and_then(|d| ns(d.midnight().assume_utc()))
}

/// `SECONDS[.FRACTION]` (at most 9 fraction digits) in nanoseconds, exactly (no float).
fn unix_seconds(v: &str) -> Option<i128> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (!frac.is_empty() && !digits(frac)) || frac.len() > 9 {
        return None;
    }
    let secs: i128 = int.parse().ok()?;
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(secs * 1_000_000_000 + nanos)
}

/// [`parse_instant`] in whole seconds (rounded down), `now` in seconds: `system prune`'s `until`.
pub(crate) fn parse_until(v: &str, now: i64) -> Option<i64> {
    parse_instant(v, i128::from(now) * 1_000_000_000).map(|ns| ns.div_euclid(1_000_000_000) as i64)
}

/// The current time in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    #[test]
    fn until_takes_durations_timestamps_and_dates() {
        assert_eq!(parse_until("24h", NOW), Some(NOW - 86_400));
        assert_eq!(parse_until("1h30m", NOW), Some(NOW - 5400));
        assert_eq!(parse_until("1.5h", NOW), Some(NOW - 5400));
        assert_eq!(parse_until("90s", NOW), Some(NOW - 90));
        assert_eq!(parse_until("1700000000", NOW), Some(1_700_000_000));
        assert_eq!(parse_until("1700000000.75", NOW), Some(1_700_000_000));
        assert_eq!(parse_until("1970-01-02", NOW), Some(86_400));
        assert_eq!(
            parse_until("2023-11-14T22:13:20Z", NOW),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_until("2023-11-14T23:13:20.5+01:00", NOW),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_until("2023-11-14T21:13:20-01:00", NOW),
            Some(1_700_000_000)
        );
        for bad in [
            "",
            "yesterday",
            "24",
            "1d",
            "2023-13-01",
            "2023-11-14T25:00:00Z",
            "h",
        ] {
            if bad == "24" {
                // A bare number is a Unix timestamp, as docker's.
                assert_eq!(parse_until(bad, NOW), Some(24));
                continue;
            }
            assert_eq!(parse_until(bad, NOW), None, "{bad}");
        }
    }

    #[test]
    fn instants_keep_nanoseconds() {
        let now = i128::from(NOW) * 1_000_000_000;
        assert_eq!(parse_instant("10m", now), Some(now - 600_000_000_000));
        assert_eq!(
            parse_instant("1700000000.000000005", now),
            Some(1_700_000_000_000_000_005)
        );
        assert_eq!(
            parse_instant("2023-11-14T22:13:20.25Z", now),
            Some(1_700_000_000_250_000_000)
        );
        assert_eq!(parse_instant("1.0000000001", now), None);
    }
}
