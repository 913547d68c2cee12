//! Go's number formatting (`strconv`/`fmt`), as alert templates print numbers.
//!
//! Annotations are compared byte for byte by Alertmanager (grouping, dedup) and by promtool's
//! unit tests, so `{{ $value }}` must print `1e+06`, not `1000000`, and `%.4g` must drop
//! trailing zeros exactly as Go does. Rust's exact shortest/fixed-precision digit generation
//! gives the digits; the layout rules below are a transcription of Go's `%e`/`%f`/`%g`.

/// Decimal digits (no trailing zeros) and the decimal point position of |v|.
fn digits(v: f64, prec: Option<usize>) -> (Vec<u8>, i32) {
    let s = match prec {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while d.len() > 1 && d.last() == Some(&b'0') {
        d.pop();
    }
    if d == [b'0'] {
        return (d, 1);
    }
    (d, exp + 1)
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

fn fmt_e(neg: bool, d: &[u8], dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push(d[0] as char);
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            s.push(*d.get(i).unwrap_or(&b'0') as char);
        }
    }
    let exp = if d == [b'0'] { 0 } else { dp - 1 };
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.abs()));
    s
}

fn fmt_f(neg: bool, d: &[u8], dp: i32, decimals: usize) -> String {
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if dp > 0 {
        for i in 0..dp as usize {
            s.push(*d.get(i).unwrap_or(&b'0') as char);
        }
    } else {
        s.push('0');
    }
    if decimals > 0 {
        s.push('.');
        for i in 0..decimals as i32 {
            let j = dp + i;
            let c = if j < 0 {
                b'0'
            } else {
                *d.get(j as usize).unwrap_or(&b'0')
            };
            s.push(c as char);
        }
    }
    s
}

/// Go's `%g` with an optional precision (`%v` of a float64 is `%g` without one).
pub fn g(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let prec = prec.map(|p| p.max(1));
    let (d, dp) = digits(v, prec);
    let neg = v.is_sign_negative() && v != 0.0;
    let nd = d.len();
    let shortest = prec.is_none();
    let mut p = prec.unwrap_or(nd);
    let mut eprec = p;
    if eprec > nd && nd as i32 >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec as i32 {
        if p > nd {
            p = nd;
        }
        return fmt_e(neg, &d, dp, p - 1);
    }
    if p as i32 > dp {
        p = nd;
    }
    fmt_f(neg, &d, dp, (p as i32 - dp).max(0) as usize)
}

/// Go's `%.Nf` (default precision 6).
pub fn f(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    format!("{:.*}", prec.unwrap_or(6), v)
}

/// Go's `%.Ne` (default precision 6).
pub fn e(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let p = prec.unwrap_or(6);
    let s = format!("{:.*e}", p, v.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if v.is_sign_negative() && v != 0.0 {
        "-"
    } else {
        ""
    };
    format!(
        "{sign}{mant}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

/// Go's `%q` of a string.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_v_matches_go() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.5, "0.5"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(g(v, None), want, "{v}");
        }
    }

    #[test]
    fn percent_4g_matches_go() {
        for (v, want) in [
            (1.5, "1.5"),
            (1234.0, "1234"),
            (12345.0, "1.234e+04"),
            (100000.0, "1e+05"),
            (0.0, "0"),
            (2.0, "2"),
            (0.012345, "0.01235"),
            (999.95, "1000"),
        ] {
            assert_eq!(g(v, Some(4)), want, "{v}");
        }
    }

    #[test]
    fn percent_f_and_e() {
        assert_eq!(f(1.0 / 3.0, Some(2)), "0.33");
        assert_eq!(e(1234.5, Some(2)), "1.23e+03");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}
