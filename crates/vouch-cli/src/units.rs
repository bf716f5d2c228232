//! Human-friendly sizes and durations for limits: `512MiB`, `1GiB`, `60s`, `500ms`.

use std::time::Duration;

use anyhow::{Context, Result, bail};

fn split_number(s: &str) -> Result<(u64, &str)> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        bail!("{s:?} does not start with a number");
    }
    let n = num.parse().with_context(|| format!("{s:?}: number too large"))?;
    Ok((n, unit.trim()))
}

/// A byte size: a number with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB).
pub fn parse_size(s: &str) -> Result<u64> {
    let (n, unit) = split_number(s).with_context(|| format!("invalid size {s:?}"))?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        u => bail!("invalid size {s:?}: unknown unit {u:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"),
    };
    n.checked_mul(mult).with_context(|| format!("size {s:?} overflows"))
}

/// A duration: a number with a unit (ms, s, m, h); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (n, unit) = split_number(s).with_context(|| format!("invalid duration {s:?}"))?;
    let ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        u => bail!("invalid duration {s:?}: unknown unit {u:?} (use ms, s, m, h)"),
    };
    n.checked_mul(ms).map(Duration::from_millis).with_context(|| format!("duration {s:?} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("10 KB").unwrap(), 10_000);
        assert_eq!(parse_size("7").unwrap(), 7);
        for bad in ["12XB", "MiB", "", "-1MiB", "1.5GiB", "99999999999999999999", "18446744073709551615GiB"] {
            let e = parse_size(bad).unwrap_err();
            assert!(format!("{e:#}").contains(&format!("{bad:?}")), "{bad}: {e:#}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["10x", "s", "1.5s", "-3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
