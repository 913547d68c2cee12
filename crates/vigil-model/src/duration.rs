//! Durations in Prometheus' syntax: `1h30m`, `15s`, `500ms`, `1d`, `1w`, `1y`.
//!
//! Units must appear from largest to smallest, each at most once, as in Prometheus'
//! `model.ParseDuration`; `0` alone is allowed. Display gives the canonical form Prometheus
//! prints (`1h30m`, `0s`), so configs round-trip through `/api/v1/status/config`.

use std::fmt;
use std::str::FromStr;

/// A non-negative duration with millisecond resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("not a valid duration string: {0:?}")]
    Invalid(String),
    #[error("duration out of range: {0:?}")]
    Overflow(String),
}

const UNITS: [(&str, u64); 8] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
    ("", 0), // sentinel, never matched
];

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub fn from_millis(ms: u64) -> Self {
        Duration(ms)
    }
    pub fn from_secs(s: u64) -> Self {
        Duration(s * 1000)
    }
    pub fn as_millis(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || DurationError::Invalid(s.to_string());
        if s == "0" {
            return Ok(Duration(0));
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut total: u64 = 0;
        // Index into UNITS of the last unit seen: later units must be strictly smaller.
        let mut last_unit: Option<usize> = None;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(invalid());
            }
            let n: u64 = s[start..i]
                .parse()
                .map_err(|_| DurationError::Overflow(s.into()))?;
            let ustart = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &s[ustart..i];
            let idx = UNITS[..7]
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(invalid)?;
            if last_unit.is_some_and(|l| idx <= l) {
                return Err(invalid());
            }
            last_unit = Some(idx);
            let part = n
                .checked_mul(UNITS[idx].1)
                .ok_or_else(|| DurationError::Overflow(s.into()))?;
            total = total
                .checked_add(part)
                .ok_or_else(|| DurationError::Overflow(s.into()))?;
        }
        // Prometheus keeps durations as int64 nanoseconds.
        if total > (i64::MAX as u64) / 1_000_000 {
            return Err(DurationError::Overflow(s.into()));
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in &UNITS[..7] {
            // Prometheus prints weeks and years only when they divide the whole value.
            if (*unit == "y" || *unit == "w") && !ms.is_multiple_of(*size) {
                continue;
            }
            if ms >= *size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        for (s, ms) in [
            ("0", 0),
            ("15s", 15_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("500ms", 500),
            ("1y", 31_536_000_000),
            ("2h0m0s", 7_200_000),
        ] {
            assert_eq!(s.parse::<Duration>().unwrap().as_millis(), ms, "{s}");
        }
    }

    #[test]
    fn refuses_malformed() {
        for s in [
            "", "1", "1x", "s", "1m1h", "1s1s", "-1s", "1.5s", "1h 30m", "30m1h",
        ] {
            assert!(s.parse::<Duration>().is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn displays_canonically() {
        for (ms, s) in [
            (0, "0s"),
            (15_000, "15s"),
            (5_400_000, "1h30m"),
            (86_400_000, "1d"),
            (604_800_000, "1w"),
            (90_061_001, "1d1h1m1s1ms"),
        ] {
            assert_eq!(Duration(ms).to_string(), s);
        }
    }
}
