//! Go's float formatting (`strconv.FormatFloat` and `fmt`'s `%e`/`%f`/`%g`), the one owner.
//!
//! Prometheus prints numbers with Go, and its users compare those strings byte for byte: the
//! API's sample values (`'f'`, shortest), the text exposition of federation (`'g'`, shortest),
//! an alert's value (`'e'`, shortest), and alert templates (`{{ $value }}` is `%v`, so `1e+06`
//! and not `1000000`; `%.4g` drops trailing zeros as Go does; Alertmanager groups on them).
//! Rust's exact shortest and fixed-precision digit generation gives the digits; the layout
//! rules below are Go's.

/// Decimal digits (no trailing zeros) and the decimal point position of |v|.
/// Significant decimal digits that can be non-zero in a float64's exact value (767 at most):
/// asking Rust's formatter for more only adds zeros, and it refuses precisions over 65,535
/// (it panics) where Go takes up to ten million.
const MAX_SIGNIFICANT: usize = 800;
/// Fractional decimal digits that can be non-zero in a float64's exact value (1,074 at most).
const MAX_FRACTION: usize = 1100;

fn digits(v: f64, prec: Option<usize>) -> (Vec<u8>, i32) {
    let s = match prec {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1).min(MAX_SIGNIFICANT), v.abs()),
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
    let neg = v.is_sign_negative(); // Go prints -0 as "-0"
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
    let p = prec.unwrap_or(6);
    let mut s = format!("{:.*}", p.min(MAX_FRACTION), v);
    s.extend(std::iter::repeat_n('0', p.saturating_sub(MAX_FRACTION)));
    s
}

/// Go's `%.Ne` (default precision 6).
pub fn e(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let p = prec.unwrap_or(6);
    let s = format!("{:.*e}", p.min(MAX_SIGNIFICANT), v.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let zeros = "0".repeat(p.saturating_sub(MAX_SIGNIFICANT));
    let mant = format!("{mant}{zeros}");
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if v.is_sign_negative() { "-" } else { "" };
    format!(
        "{sign}{mant}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, never an exponent.
pub fn shortest_f(v: f64) -> String {
    match special(v) {
        Some(s) => s,
        // Rust's Display is shortest round-trip without exponent, as Go's 'f' with -1.
        None => format!("{v}"),
    }
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`: shortest round-trip digits, always an exponent.
pub fn shortest_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
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

    #[test]
    fn shortest_forms_match_strconv() {
        for (v, f_, e_) in [
            (1.0, "1", "1e+00"),
            (0.5, "0.5", "5e-01"),
            (1234567.0, "1234567", "1.234567e+06"),
            (1e21, "1000000000000000000000", "1e+21"),
            (1.5e-7, "0.00000015", "1.5e-07"),
            (-0.25, "-0.25", "-2.5e-01"),
            (f64::NAN, "NaN", "NaN"),
            (f64::INFINITY, "+Inf", "+Inf"),
            (f64::NEG_INFINITY, "-Inf", "-Inf"),
        ] {
            assert_eq!(shortest_f(v), f_, "{v}");
            assert_eq!(shortest_e(v), e_, "{v}");
        }
    }

    #[test]
    fn strconv_g_shortest() {
        // The text exposition format's floats (client_golang's writeFloat, federation).
        for (v, s) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1.60123456789e9, "1.60123456789e+09"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (-2.0e100, "-2e+100"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(g(v, None), s, "{v}");
        }
    }
}

#[cfg(test)]
mod huge_precision_tests {
    use super::*;

    #[test]
    fn precisions_rust_cannot_format_are_padded_with_zeros_not_a_panic() {
        let f70k = f(0.1, Some(70_000));
        assert_eq!(f70k.len(), 70_002);
        assert!(f70k.starts_with("0.1000000000000000055511151231257827"));
        assert!(f70k[1102..].bytes().all(|b| b == b'0'));
        assert_eq!(f(0.1, Some(3)), "0.100");
        let e70k = e(-2.5, Some(70_000));
        assert!(
            e70k.starts_with("-2.5000") && e70k.ends_with("e+00"),
            "{}",
            &e70k[..10]
        );
        assert_eq!(e70k.len(), 1 + 2 + 70_000 + 4);
        assert_eq!(g(0.1, Some(70_000)), g(0.1, Some(800)));
        assert_eq!(g(0.1, Some(20)), "0.10000000000000000555");
    }
}
