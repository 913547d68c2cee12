//! Calendar functions (`hour()`, `day_of_week()`, …) in UTC, with the civil-date algorithm
//! of Howard Hinnant (`vigil_model::civil`) so no date crate is needed.

use super::map_series;
use crate::engine::eval::{Ev, Result, Series, Val};
use vigil_model::civil::civil_from_days;
use vigil_model::{Labels, Sample};
use vigil_promql_parser::Expr;

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go's `time.Unix(int64(v), 0).UTC()` split into its fields.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    weekday: u32,
    yday: u32,
}

/// Seconds from 1970 back to the zero of Go's absolute time (year -292277022399), which Go
/// adds in a `u64`: for the earliest `int64` times the sum wraps to the far future.
const UNIX_TO_GO_ABSOLUTE: i128 = 62_135_596_800 + 9_223_371_966_579_724_800;

fn civil(v: f64) -> Civil {
    // Go's int64(v) on amd64: NaN and values out of range become i64::MIN.
    let secs = if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v) {
        v as i64
    } else {
        i64::MIN
    };
    let mut secs = secs as i128;
    if secs + UNIX_TO_GO_ABSOLUTE < 0 {
        secs += 1 << 64;
    }
    // Both fit: |secs| < 2^65, so days < 2^49.
    let days = secs.div_euclid(86_400) as i64;
    let rem = secs.rem_euclid(86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    let mut yday = day;
    for m in 1..month {
        yday += days_in_month(year, m);
    }
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: ((rem % 3600) / 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        yday,
    }
}

pub(super) type DateFn = fn(f64) -> f64;

pub(super) fn date_fn(name: &str) -> Option<DateFn> {
    Some(match name {
        "day_of_month" => |v| civil(v).day as f64,
        "day_of_week" => |v| civil(v).weekday as f64,
        "day_of_year" => |v| civil(v).yday as f64,
        "days_in_month" => |v| {
            let c = civil(v);
            days_in_month(c.year, c.month) as f64
        },
        "hour" => |v| civil(v).hour as f64,
        "minute" => |v| civil(v).minute as f64,
        "month" => |v| civil(v).month as f64,
        "year" => |v| civil(v).year as f64,
        _ => return None,
    })
}

pub(super) fn eval_date(ev: &Ev, args: &[&Expr], f: DateFn) -> Result<Val> {
    let Some(arg) = args.first() else {
        // No argument: vector(time()), in whole seconds.
        let points = (0..ev.steps())
            .map(|i| {
                let ts = ev.ts(i);
                Sample {
                    t: ts,
                    v: f(ts.div_euclid(1000) as f64),
                }
            })
            .collect();
        return Ok(Val::Vector(vec![Series {
            hpoints: Vec::new(),
            labels: Labels::empty(),
            drop_name: false,
            points,
            sts: Vec::new(),
        }]));
    };
    let input = ev.eval_vector(arg)?;
    // NaN and ±Inf give the date Go gives them (see `civil`), as in Prometheus.
    Ok(Val::Vector(map_series(ev, input, &[], |v, _| Some(f(v)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Prometheus 2.42 (`month(vector(NaN))`, …) answers on amd64: Go turns NaN, ±Inf
    /// and times before -2^63 s into i64::MIN, whose absolute time wraps to year 292277026596.
    #[test]
    fn times_go_cannot_convert_give_gos_date() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -9.3e18, 9.3e18] {
            let c = civil(v);
            let got = (c.year, c.month, c.day, c.weekday, c.yday, c.hour, c.minute);
            assert_eq!(got, (292_277_026_596, 12, 4, 0, 339, 15, 30), "{v}");
            assert_eq!(days_in_month(c.year, c.month), 31);
        }
        let c = civil(-9.2e18);
        assert_eq!(
            (c.year, c.month, c.day),
            (-291_536_392_293, 5, 3),
            "as Prometheus 2.42"
        );
    }
}
