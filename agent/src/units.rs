//! Parsing of the values flags take: durations with a unit, rates with a
//! k/M/G suffix. A leaf: it knows no setting, only forms.

use std::time::Duration;

/// A duration with a unit: `500ms`, `5s`, `1m`, `1h`, `1.5s`. A bare
/// number is refused: `5` could mean seconds or milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration '{s}' has no unit: write e.g. 500ms, 5s, 1m or 1h"))?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "duration '{s}' does not start with a number: write e.g. 5s"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("duration '{s}': '{num}' is not a number"))?;
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "duration '{s}': unknown unit '{unit}' (use ms, s, m or h)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || secs > 7.0 * 86400.0 {
        return Err(format!("duration '{s}' is too long (at most 7 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A duration, or a bare `0` for none.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// A rate: a whole number with an optional k, M or G (x1000 each), e.g.
/// `50k` packets per second or `1G` bits per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, scale) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1e3),
        Some((i, 'M')) => (&t[..i], 1e6),
        Some((i, 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0 && !num.starts_with('+'))
        .ok_or_else(|| format!("rate '{s}' is not a number with an optional k, M or G"))?;
    let r = (v * scale).round();
    if r > 1e15 {
        return Err(format!("rate '{s}' is too large"));
    }
    Ok(r as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in [
            "5",
            "",
            "s",
            "5x",
            "-5s",
            "5 s",
            "1e3s",
            "..s",
            "99999999h",
            "5sec",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("50k"), Ok(50_000));
        assert_eq!(parse_rate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_rate("2.5M"), Ok(2_500_000));
        assert_eq!(parse_rate("300"), Ok(300));
        assert!(parse_rate("1x").is_err() && parse_rate("-1").is_err() && parse_rate("").is_err());
        assert!(parse_rate("+5").is_err() && parse_rate("2e15").is_err());
    }
}
