//! Go's `fmt.Sprintf`, behind the template function `printf`.
//!
//! Its own file because Go's verb, flag and `%!verb(type=value)` error conventions are a
//! small language of their own, and annotations written for Prometheus depend on them.

use super::Value;
use crate::gofmt;
use std::fmt::Write as _;

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %g %e %q %x %%`, with
/// flags `-+0 `, width and precision.
pub fn sprintf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut argi = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut minus = false;
        let mut plus = false;
        let mut zero = false;
        let mut space = false;
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        // Go's `parsenum`: a number past 1e6 before its next digit is "crazy long": the rest of
        // the format is consumed and the verb is missing.
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Option<usize> {
            let mut n: usize = 0;
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                if n > 1_000_000 {
                    chars.by_ref().for_each(drop);
                    return None;
                }
                n = n * 10 + (d as usize - '0' as usize);
                chars.next();
            }
            Some(n)
        };
        let Some(w) = number(&mut chars) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let Some(p) = number(&mut chars) else {
                out.push_str("%!(NOVERB)");
                break;
            };
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let num = arg.to_f64().ok().filter(|_| !matches!(arg, Value::Str(_)));
        let mut s = match (verb, arg) {
            ('d', Value::Int(i)) => i.to_string(),
            ('d', Value::Num(f)) => format!("%!d(float64={})", gofmt::g(*f, None)),
            ('s' | 'v', Value::Num(f)) if verb == 'v' || prec.is_none() => {
                if verb == 's' {
                    format!("%!s(float64={})", gofmt::g(*f, None))
                } else {
                    gofmt::g(*f, prec)
                }
            }
            ('s' | 'v', v) => {
                let t = v.print();
                match prec {
                    Some(p) if verb == 's' => t.chars().take(p).collect(),
                    _ => t,
                }
            }
            ('q', v) => gofmt::quote(&v.print()),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('x', v) if num.is_none() => v.print().bytes().map(|b| format!("{b:02x}")).collect(),
            ('f' | 'F', _) if num.is_some() => gofmt::f(num.unwrap_or(0.0), prec),
            ('g' | 'G', _) if num.is_some() => gofmt::g(num.unwrap_or(0.0), prec),
            ('e' | 'E', _) if num.is_some() => gofmt::e(num.unwrap_or(0.0), prec),
            (v, a) => format!("%!{v}({}={})", a.type_name(), a.print()),
        };
        if num.is_some() && !s.starts_with('-') {
            if plus {
                s.insert(0, '+');
            } else if space {
                s.insert(0, ' ');
            }
        }
        let len = s.chars().count();
        if len < w {
            let pad = w - len;
            if minus {
                s.push_str(&" ".repeat(pad));
            } else if zero && num.is_some() {
                let sign = if s.starts_with(['-', '+', ' ']) {
                    s.remove(0).to_string()
                } else {
                    String::new()
                };
                s = format!("{sign}{}{s}", "0".repeat(pad));
            } else {
                s = format!("{}{s}", " ".repeat(pad));
            }
        }
        out.push_str(&s);
    }
    if argi < args.len() {
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.print()))
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_flags_and_go_error_forms() {
        let v = [Value::Num(3.5), Value::Int(-7), Value::Str("ab".into())];
        assert_eq!(sprintf("%+.1f %05d %q", &v), "+3.5 -0007 \"ab\"");
        assert_eq!(sprintf("%d", &[Value::Num(2.0)]), "%!d(float64=2)");
        assert_eq!(sprintf("%s %s", &[Value::Int(1)]), "1 %!s(MISSING)");
        assert_eq!(sprintf("x", &[Value::Bool(true)]), "x%!(EXTRA bool=true)");
        assert_eq!(sprintf("100%%", &[]), "100%");
    }

    /// Found by the fuzz target `template_expand`: `{{ printf "%.0000…01788596405651278734F" … }}`
    /// in an alert annotation panicked (Rust's formatter refuses precisions over 65,535).
    #[test]
    fn printf_with_a_precision_rust_cannot_format_panicked() {
        let crash = "%.000000000000000000001788596405651278734F|severity%5.1f|%d";
        // Go: the number is "crazy long" (past 1e6), the rest of the format is consumed.
        assert_eq!(
            sprintf(crash, &[Value::Int(52)]),
            "%!(NOVERB)%!(EXTRA int=52)"
        );
        let s = sprintf("%.70000f", &[Value::Num(0.5)]);
        assert_eq!(s.len(), 70_002);
        assert!(s.starts_with("0.5000"));
        assert_eq!(sprintf("%.1000001f|", &[Value::Num(1.0)]).len(), 1_000_004);
        assert_eq!(sprintf("%10000001d", &[Value::Int(1)]).len(), 10_000_001);
        assert_eq!(
            sprintf("%100000001d", &[Value::Int(1)]),
            "%!(NOVERB)%!(EXTRA int=1)"
        );
    }
}
