//! Differential test against `promql-parser` 0.11.1, the parser vigil replaces: for every
//! query of the upstream promqltest corpus (`eval` lines) and of the compliance query
//! templates, wherever `promql-parser` accepts a query vigil's parser must accept it too and
//! mean the same thing. Meaning is compared as a canonical rendering of both trees that
//! ignores positions, parentheses and spellings that do not change what is selected or
//! computed (`by ()` and no grouping, `ignoring()` and no matching, where the metric name
//! matcher is stored).

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser as pp;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::{Duration as StdDuration, UNIX_EPOCH};
use vigil_promql_parser as vp;

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v:?}")
    }
}

fn groups(name: Option<&str>, gs: Vec<Vec<(String, &'static str, String)>>) -> String {
    let mut out = BTreeSet::new();
    for g in gs {
        let mut set: BTreeSet<String> = g
            .into_iter()
            .map(|(n, op, v)| format!("{n}{op}{v:?}"))
            .collect();
        if let Some(n) = name {
            set.insert(format!("__name__={n:?}"));
        }
        out.insert(set.into_iter().collect::<Vec<_>>().join(","));
    }
    out.into_iter().collect::<Vec<_>>().join(" or ")
}

// ---- vigil's tree ----

fn ours_matchers(g: &[vigil_model::Matcher]) -> Vec<(String, &'static str, String)> {
    g.iter()
        .map(|m| (m.name.clone(), m.op_str(), m.value.clone()))
        .collect()
}

fn ours_dur(d: &vp::Duration) -> String {
    match d.fixed() {
        Some(ms) => ms.to_string(),
        None => format!("expr({d})"),
    }
}

fn ours_at(at: &Option<vp::At>) -> String {
    match at {
        None => "-".into(),
        Some(vp::At::Start) => "start".into(),
        Some(vp::At::End) => "end".into(),
        Some(vp::At::Timestamp(ms)) => ms.to_string(),
    }
}

fn ours_vs(vs: &vp::VectorSelector) -> String {
    let mut gs = vec![ours_matchers(&vs.matchers)];
    gs.extend(vs.or_matchers.iter().map(|g| ours_matchers(g)));
    format!(
        "vs({} offset={} at={})",
        groups(vs.name.as_deref(), gs),
        ours_dur(&vs.offset),
        ours_at(&vs.at)
    )
}

fn labels_of(l: &[String]) -> String {
    l.join(",")
}

fn ours(e: &vp::Expr) -> String {
    match e {
        vp::Expr::NumberLiteral(n) => format!("num({})", num(n.val)),
        vp::Expr::StringLiteral(s) => format!("str({:?})", s.val),
        vp::Expr::Paren(p) => ours(&p.expr),
        vp::Expr::Unary(u) => match u.op {
            vp::UnaryOp::Neg => format!("neg({})", ours(&u.expr)),
            vp::UnaryOp::Pos => ours(&u.expr),
        },
        vp::Expr::Binary(b) => {
            let mut m = String::new();
            if let Some(vm) = &b.matching {
                if vm.on {
                    write!(m, " on({})", labels_of(&vm.matching_labels)).unwrap();
                } else if !vm.matching_labels.is_empty() {
                    write!(m, " ignoring({})", labels_of(&vm.matching_labels)).unwrap();
                }
                match vm.card {
                    vp::Cardinality::ManyToOne => {
                        write!(m, " group_left({})", labels_of(&vm.include)).unwrap()
                    }
                    vp::Cardinality::OneToMany => {
                        write!(m, " group_right({})", labels_of(&vm.include)).unwrap()
                    }
                    _ => {}
                }
                if vm.fill.lhs.is_some() || vm.fill.rhs.is_some() {
                    write!(m, " fill({:?},{:?})", vm.fill.lhs, vm.fill.rhs).unwrap();
                }
            }
            format!(
                "bin({}{}{} {} {})",
                b.op,
                if b.return_bool { " bool" } else { "" },
                m,
                ours(&b.lhs),
                ours(&b.rhs)
            )
        }
        vp::Expr::Aggregate(a) => {
            let g = if a.without {
                format!(" without({})", labels_of(&a.grouping))
            } else if a.grouping.is_empty() {
                String::new()
            } else {
                format!(" by({})", labels_of(&a.grouping))
            };
            let p = a.param.as_ref().map(|p| ours(p) + ", ").unwrap_or_default();
            format!("agg({}{g} {p}{})", a.op, ours(&a.expr))
        }
        vp::Expr::Call(c) => format!(
            "call({} {})",
            c.func.name,
            c.args.iter().map(ours).collect::<Vec<_>>().join(", ")
        ),
        vp::Expr::VectorSelector(vs) => ours_vs(vs),
        vp::Expr::MatrixSelector(m) => format!("ms({} [{}])", ours_vs(&m.vs), ours_dur(&m.range)),
        vp::Expr::Subquery(s) => format!(
            "sq({} [{}:{}] offset={} at={})",
            ours(&s.expr),
            ours_dur(&s.range),
            s.step.as_ref().map(ours_dur).unwrap_or_default(),
            ours_dur(&s.offset),
            ours_at(&s.at)
        ),
        vp::Expr::Duration(d) => format!("dur({d})"),
    }
}

// ---- promql-parser's tree ----

fn theirs_matchers(g: &[promql_parser::label::Matcher]) -> Vec<(String, &'static str, String)> {
    g.iter()
        .map(|m| {
            let op = match m.op {
                PMatchOp::Equal => "=",
                PMatchOp::NotEqual => "!=",
                PMatchOp::Re(_) => "=~",
                PMatchOp::NotRe(_) => "!~",
            };
            (m.name.clone(), op, m.value.clone())
        })
        .collect()
}

fn ms(d: StdDuration) -> i64 {
    d.as_millis() as i64
}

fn theirs_offset(o: &Option<pp::Offset>) -> String {
    match o {
        None => "0".into(),
        Some(pp::Offset::Pos(d)) => ms(*d).to_string(),
        Some(pp::Offset::Neg(d)) => (-ms(*d)).to_string(),
    }
}

fn theirs_at(a: &Option<pp::AtModifier>) -> String {
    match a {
        None => "-".into(),
        Some(pp::AtModifier::Start) => "start".into(),
        Some(pp::AtModifier::End) => "end".into(),
        Some(pp::AtModifier::At(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => ms(d).to_string(),
            Err(e) => (-ms(e.duration())).to_string(),
        },
    }
}

fn theirs_vs(vs: &pp::VectorSelector) -> String {
    let mut gs = Vec::new();
    if !vs.matchers.matchers.is_empty() || vs.matchers.or_matchers.is_empty() {
        gs.push(theirs_matchers(&vs.matchers.matchers));
    }
    gs.extend(vs.matchers.or_matchers.iter().map(|g| theirs_matchers(g)));
    format!(
        "vs({} offset={} at={})",
        groups(vs.name.as_deref(), gs),
        theirs_offset(&vs.offset),
        theirs_at(&vs.at)
    )
}

fn theirs(e: &pp::Expr) -> String {
    match e {
        pp::Expr::NumberLiteral(n) => format!("num({})", num(n.val)),
        pp::Expr::StringLiteral(s) => format!("str({:?})", s.val),
        pp::Expr::Paren(p) => theirs(&p.expr),
        pp::Expr::Unary(u) => format!("neg({})", theirs(&u.expr)),
        pp::Expr::Binary(b) => {
            let mut m = String::new();
            let mut rb = false;
            if let Some(md) = &b.modifier {
                rb = md.return_bool;
                match &md.matching {
                    Some(pp::LabelModifier::Include(l)) => {
                        write!(m, " on({})", labels_of(&l.labels)).unwrap()
                    }
                    Some(pp::LabelModifier::Exclude(l)) if !l.labels.is_empty() => {
                        write!(m, " ignoring({})", labels_of(&l.labels)).unwrap()
                    }
                    _ => {}
                }
                match &md.card {
                    pp::VectorMatchCardinality::ManyToOne(l) => {
                        write!(m, " group_left({})", labels_of(&l.labels)).unwrap()
                    }
                    pp::VectorMatchCardinality::OneToMany(l) => {
                        write!(m, " group_right({})", labels_of(&l.labels)).unwrap()
                    }
                    _ => {}
                }
                let f = &md.fill_values;
                if f.lhs.is_some() || f.rhs.is_some() {
                    write!(m, " fill({:?},{:?})", f.lhs, f.rhs).unwrap();
                }
            }
            let both_vectors = b.lhs.value_type()
                == promql_parser::parser::value::ValueType::Vector
                && b.rhs.value_type() == promql_parser::parser::value::ValueType::Vector;
            if !both_vectors {
                m.clear();
            }
            format!(
                "bin({}{}{} {} {})",
                b.op,
                if rb { " bool" } else { "" },
                m,
                theirs(&b.lhs),
                theirs(&b.rhs)
            )
        }
        pp::Expr::Aggregate(a) => {
            let g = match &a.modifier {
                Some(pp::LabelModifier::Exclude(l)) => {
                    format!(" without({})", labels_of(&l.labels))
                }
                Some(pp::LabelModifier::Include(l)) if !l.labels.is_empty() => {
                    format!(" by({})", labels_of(&l.labels))
                }
                _ => String::new(),
            };
            let p = a
                .param
                .as_ref()
                .map(|p| theirs(p) + ", ")
                .unwrap_or_default();
            format!("agg({}{g} {p}{})", a.op, theirs(&a.expr))
        }
        pp::Expr::Call(c) => format!(
            "call({} {})",
            c.func.name,
            c.args
                .args
                .iter()
                .map(|a| theirs(a))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        pp::Expr::VectorSelector(vs) => theirs_vs(vs),
        pp::Expr::MatrixSelector(m) => format!("ms({} [{}])", theirs_vs(&m.vs), ms(m.range)),
        pp::Expr::Subquery(s) => format!(
            "sq({} [{}:{}] offset={} at={})",
            theirs(&s.expr),
            ms(s.range),
            s.step.map(|d| ms(d).to_string()).unwrap_or_default(),
            theirs_offset(&s.offset),
            theirs_at(&s.at)
        ),
        pp::Expr::Extension(_) => "ext".into(),
    }
}

// ---- the corpora ----

fn promqltest_queries(dir: &std::path::Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let l = line.trim();
            if !l.starts_with("eval") {
                continue;
            }
            let Some((_, rest)) = l.split_once(char::is_whitespace) else {
                continue;
            };
            let rest = rest.trim();
            let expr = if let Some(r) = rest.strip_prefix("instant at ") {
                r.trim().split_once(char::is_whitespace).map(|x| x.1)
            } else if let Some(r) = rest.strip_prefix("range from ") {
                r.trim().splitn(6, char::is_whitespace).nth(5)
            } else {
                None
            };
            if let Some(e) = expr {
                out.push(e.trim().to_string());
            }
        }
    }
    out
}

/// The compliance tool's values for each template variable.
fn variant_values(arg: &str) -> &'static [&'static str] {
    match arg {
        "offset" => &["1m", "5m", "10m"],
        "range" => &["1s", "15s", "1m", "5m", "15m", "1h"],
        "simpleAggrOp" => &[
            "sum", "avg", "max", "min", "count", "stddev", "stdvar", "group",
        ],
        "topBottomOp" => &["topk", "bottomk"],
        "quantile" => &[
            "-0.5", "0.1", "0.5", "0.75", "0.95", "0.90", "0.99", "1", "1.5",
        ],
        "arithBinOp" => &["+", "-", "*", "/", "%", "^"],
        "compBinOp" => &["==", "!=", "<", ">", "<=", ">="],
        "binOp" => &[
            "+", "-", "*", "/", "%", "^", "==", "!=", "<", ">", "<=", ">=",
        ],
        "simpleMathFunc" => &[
            "abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "round",
        ],
        "extrapolatedRateFunc" => &["delta", "rate", "increase"],
        "clampFunc" => &["clamp_min", "clamp_max"],
        "instantRateFunc" => &["idelta", "irate"],
        "dateFunc" => &[
            "day_of_month",
            "day_of_week",
            "days_in_month",
            "hour",
            "minute",
            "month",
            "year",
        ],
        "simpleTimeAggrOp" => &[
            "sum", "avg", "max", "min", "count", "stddev", "stdvar", "absent", "last", "present",
        ],
        _ => &[],
    }
}

fn compliance_queries(path: &std::path::Path) -> Vec<String> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for case in doc["test_cases"].as_sequence().into_iter().flatten() {
        let Some(q) = case["query"].as_str() else {
            continue;
        };
        let args: Vec<&str> = case["variant_args"]
            .as_sequence()
            .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let mut queries = vec![q.to_string()];
        for a in args {
            let pat = format!("{{{{.{a}}}}}");
            queries = queries
                .iter()
                .flat_map(|q| {
                    variant_values(a)
                        .iter()
                        .map(|v| q.replace(&pat, v))
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        out.extend(queries);
    }
    out
}

/// Whether the query has a `\x80`–`\xff` or octal `\200`–`\377` escape (a byte that is not
/// UTF-8 on its own).
fn has_non_utf8_escape(q: &str) -> bool {
    let b = q.as_bytes();
    b.windows(3).any(|w| {
        w[0] == b'\\'
            && ((w[1] == b'x' && matches!(w[2], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
                || matches!(w[1], b'2'..=b'3') && matches!(w[2], b'0'..=b'7'))
    })
}

#[test]
fn same_meaning_as_promql_parser() {
    let mut queries = Vec::new();
    if let Some(dir) = vigil_testdata::corpus_dir("differential", "promqltest") {
        queries.extend(promqltest_queries(&dir));
    }
    if let Some(dir) = vigil_testdata::corpus_dir("differential", "compliance") {
        queries.extend(compliance_queries(&dir.join("promql-test-queries.yml")));
    }
    if queries.is_empty() {
        eprintln!("differential: no corpus, skipped");
        return;
    }
    let (mut both, mut same, mut known, mut only_vigil, mut only_theirs, mut neither) =
        (0, 0, 0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let mut rejected = Vec::new();
    for q in &queries {
        match (vp::parse(q), pp::parse(q)) {
            (Ok(a), Ok(b)) => {
                both += 1;
                let (ca, cb) = (ours(&a), theirs(&b));
                if ca == cb {
                    same += 1;
                } else if has_non_utf8_escape(q) {
                    // `"\xff"` is a lone byte in Go; neither Rust tree can hold it (vigil
                    // decodes it as U+FFFD, promql-parser as U+00FF).
                    known += 1;
                } else {
                    mismatches.push(format!("{q}\n  vigil:         {ca}\n  promql-parser: {cb}"));
                }
                // The printed form must parse back to the same meaning.
                let printed = a.to_string();
                match vp::parse(&printed) {
                    Ok(r) if ours(&r) == ca => {}
                    other => mismatches.push(format!(
                        "{q}\n  printed {printed:?} reparses as {:?}",
                        other.map(|r| ours(&r))
                    )),
                }
            }
            (Ok(_), Err(_)) => only_vigil += 1,
            (Err(e), Ok(_)) => {
                only_theirs += 1;
                rejected.push(format!("{q}\n  {e}"));
            }
            (Err(_), Err(_)) => neither += 1,
        }
    }
    eprintln!(
        "differential: {} queries: parsed by both {both} (same meaning {same}, known differences {known}), only vigil {only_vigil}, only promql-parser {only_theirs}, neither {neither}",
        queries.len()
    );
    for r in &rejected {
        eprintln!("only promql-parser: {r}");
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        rejected.is_empty(),
        "{} queries only promql-parser accepts",
        rejected.len()
    );
}
