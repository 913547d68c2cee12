//! Where a PromQL parse error is, in Prometheus' words: `1:5: parse error: unclosed left
//! parenthesis` (`line:column`, the column counted in bytes from 1, as Go does).
//!
//! promql-parser 0.11 says what went wrong but not where. Its lexer's errors are text only,
//! and for a syntax error it returns "invalid promql query": the error of its LR parser,
//! which holds the offending token, is dropped. So:
//!
//! - a syntax error is located by running the crate's own grammar (its
//!   `promql.y` as its package ships it, found by `build.rs`, built with grmtools at run
//!   time on first use) over the crate's own tokens:
//!   the LR parser stops at the token Prometheus' parser stops at, and the message names it
//!   as Prometheus does (`unexpected end of input`, `unexpected identifier "bar"`,
//!   `unexpected <op:==>`), without the context Prometheus' grammar adds (`in aggregation`);
//! - a lexer error is located by lexing prefixes of the query: at the end of the input for
//!   the errors only the end can cause (an unclosed parenthesis or brace), else at the
//!   character where lexing starts to fail that way;
//! - an error found after parsing (a type check, such as `rate` of an instant vector) has
//!   no position in the crate's syntax tree and keeps its text unchanged.

use cfgrammar::TIdx;
use cfgrammar::yacc::{YaccGrammar, YaccKind};
use lrpar::{LexParseError, Lexeme, RTParserBuilder, RecoveryKind};
use lrtable::{Minimiser, StateTable};
use promql_parser::parser::token;
use promql_parser::parser::{Expr, lexer};
use std::sync::OnceLock;

/// The grammar promql-parser is built from, read by `build.rs` from the package cargo
/// resolved (empty when it was not found: errors then keep their bare message).
const GRAMMAR: &str = include_str!(concat!(env!("OUT_DIR"), "/promql.y"));
/// promql-parser's message for every syntax error.
const INVALID_QUERY: &str = "invalid promql query";
/// Lexer errors are located by re-lexing prefixes, quadratic in the length: longer queries
/// keep the bare message.
const MAX_LEXER_SCAN: usize = 4096;

/// Parses `query` as the engine does (vigil's extra functions included); an error carries
/// its position where it can be found (see the module docs).
pub fn parse(query: &str) -> Result<Expr, String> {
    register_extensions();
    promql_parser::parser::parse(query).map_err(|e| locate(query, &e))
}

/// Prometheus' `L:C: parse error: MSG` for the error `err` that promql-parser returned for
/// `query`, or `err` unchanged when its position cannot be found.
pub fn locate(query: &str, err: &str) -> String {
    let found = if err == INVALID_QUERY {
        syntax_error(query)
    } else {
        lexer_error(query, err)
            .or_else(|| action_error(query, err))
            .map(|pos| (pos, in_prometheus_words(err)))
    };
    match found {
        Some((pos, msg)) => format!("{}: parse error: {msg}", line_col(query, pos)),
        None => err.to_string(),
    }
}

/// `line:column` of byte offset `pos`, as Prometheus' `ParseErr.Error` computes it.
fn line_col(query: &str, pos: usize) -> String {
    let before = &query[..pos];
    let line = 1 + before.matches('\n').count();
    let col = before.rfind('\n').map_or(pos + 1, |nl| pos - nl);
    format!("{line}:{col}")
}

struct Tables {
    grm: YaccGrammar<u16>,
    stable: StateTable<u16>,
}

fn tables() -> Option<&'static Tables> {
    static TABLES: OnceLock<Option<Tables>> = OnceLock::new();
    TABLES
        .get_or_init(|| {
            let grm = YaccGrammar::<u16>::new_with_storaget(YaccKind::Grmtools, GRAMMAR).ok()?;
            let (_, stable) = lrtable::from_yacc(&grm, Minimiser::Pager).ok()?;
            Some(Tables { grm, stable })
        })
        .as_ref()
}

/// The offset and `unexpected ...` message of the token the grammar rejects.
fn syntax_error(query: &str) -> Option<(usize, String)> {
    let lexemes = lexer(query).ok()?;
    let t = tables()?;
    let (_, errors) = RTParserBuilder::new(&t.grm, &t.stable)
        .recoverer(RecoveryKind::None)
        .parse_map(&lexemes, &|_| (), &|_, _| ());
    let lexeme = errors.into_iter().find_map(|e| match e {
        LexParseError::ParseError(e) => Some(*e.lexeme()),
        LexParseError::LexError(_) => None,
    })?;
    let span = lexeme.span();
    let id = lexeme.tok_id();
    let at_end = lexeme.faulty()
        || TIdx(id) == t.grm.eof_token_idx()
        || t.grm.token_name(TIdx(id)) == Some("EOF");
    let what = if at_end {
        "end of input".to_string()
    } else {
        describe(
            t.grm.token_name(TIdx(id)).unwrap_or(""),
            id,
            query.get(span.start()..span.end()).unwrap_or(""),
            query,
            span.start(),
        )
    };
    Some((span.start(), format!("unexpected {what}")))
}

/// A token as Prometheus' `Item.desc` names it.
fn describe(name: &str, id: u16, text: &str, query: &str, start: usize) -> String {
    let is = |lo: u16, hi: u16| lo < id && id < hi;
    match name {
        "IDENTIFIER" => format!("identifier {text:?}"),
        "METRIC_IDENTIFIER" => format!("metric identifier {text:?}"),
        "NUMBER" => format!("number {}", quote10(text)),
        "DURATION" => format!("duration {}", quote10(text)),
        // The crate's string tokens leave out the quotes; Prometheus' keep them.
        "STRING" => {
            let end = (start + text.len() + 1).min(query.len());
            let quoted = query.get(start.saturating_sub(1)..end).unwrap_or(text);
            format!("string {}", quote10(quoted))
        }
        _ if is(token::T_OPERATORS_START, token::T_OPERATORS_END) => format!("<op:{text}>"),
        _ if is(token::T_AGGREGATORS_START, token::T_AGGREGATORS_END) => {
            format!("<aggr:{text}>")
        }
        _ if is(token::T_KEYWORDS_START, token::T_KEYWORDS_END) => format!("<{text}>"),
        _ => quote10(text),
    }
}

/// Go's `%q` of a value, cut to 10 characters and `...` when longer (`Item.String`).
fn quote10(s: &str) -> String {
    if s.chars().count() > 10 {
        let head: String = s.chars().take(10).collect();
        format!("{head:?}...")
    } else {
        format!("{s:?}")
    }
}

/// promql-parser's message as Prometheus words it, where the two differ only in wording.
fn in_prometheus_words(err: &str) -> String {
    if let Some(name) = err
        .strip_prefix("unknown function with name '")
        .and_then(|r| r.strip_suffix('\''))
    {
        return format!("unknown function with name {name:?}");
    }
    match err {
        "unexpected end of input inside brackets" => "unclosed left bracket".into(),
        _ => err.to_string(),
    }
}

/// The offset of an error raised by one of the grammar's actions (not by its tables): at
/// the end for `... end of input ...`, at the name for an unknown function.
fn action_error(query: &str, err: &str) -> Option<usize> {
    if err.contains("end of input") {
        return Some(query.len());
    }
    let name = err
        .strip_prefix("unknown function with name '")?
        .strip_suffix('\'')?;
    query.match_indices(name).map(|(i, _)| i).find(|&i| {
        let before = query[..i].chars().next_back();
        let after = query[i + name.len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            && after.starts_with('(')
    })
}

/// The offset of the lexer error `err` in `query`, if `err` is one.
fn lexer_error(query: &str, err: &str) -> Option<usize> {
    let fails_so = |q: &str| matches!(lexer(q), Err(e) if e == err);
    if query.len() > MAX_LEXER_SCAN || !fails_so(query) {
        return None;
    }
    // Errors only the end of the input causes: Prometheus reports them there.
    const AT_END: [&str; 6] = [
        "unclosed left parenthesis",
        "unexpected end of input",
        "'!' can not be at the end",
        "escape sequence not terminated",
        "no expression found in input",
        "unexpected end of input inside",
    ];
    if AT_END.iter().any(|m| err.starts_with(m)) {
        return Some(query.len());
    }
    // Else the longest prefix that does not fail this way ends where the failing token (an
    // unterminated string's opening quote, an unexpected character) starts.
    let mut pos = query
        .char_indices()
        .rev()
        .map(|(i, _)| i)
        .find(|&i| !fails_so(&query[..i]))
        .unwrap_or(0);
    // Prometheus emits a `)` before finding it unbalanced, so it reports the offset after it.
    if err.starts_with("unexpected right parenthesis") && query[pos..].starts_with(')') {
        pos += 1;
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        parse(q).unwrap_err()
    }

    /// The messages of promtool 2.42 (`check rules`) for the same expressions, except for
    /// the context Prometheus' grammar adds after the token and where promql-parser's text
    /// differs (noted).
    #[test]
    fn positions_match_prometheus() {
        for (q, want) in [
            ("sum(", "1:5: parse error: unclosed left parenthesis"),
            ("1 +", "1:4: parse error: unexpected end of input"),
            (
                "foo{",
                "1:5: parse error: unexpected end of input inside braces",
            ),
            ("foo bar", "1:5: parse error: unexpected identifier \"bar\""),
            ("1 $ 2", "1:3: parse error: unexpected character: '$'"),
            ("rate(x[5m]", "1:11: parse error: unclosed left parenthesis"),
            (
                "foo{a=\"b\"",
                "1:10: parse error: unexpected end of input inside braces",
            ),
            // Prometheus: "unexpected identifier \"foo\" in aggregation".
            (
                "sum by (a) foo",
                "1:12: parse error: unexpected identifier \"foo\"",
            ),
            // promql-parser names the quote; Prometheus does not.
            ("\"abc", "1:1: parse error: unterminated quoted string \""),
            ("foo)", "1:5: parse error: unexpected right parenthesis ')'"),
            ("a +\n $", "2:2: parse error: unexpected character: '$'"),
            (
                "sum(rate(x[5m])) by (",
                "1:22: parse error: unclosed left parenthesis",
            ),
            ("1 2", "1:3: parse error: unexpected number \"2\""),
            // Prometheus: "... in grouping opts, expected label".
            (
                "sum without(==)(x)",
                "1:13: parse error: unexpected <op:==>",
            ),
            (
                "foo{__name__=\"bar\" lol}",
                "1:20: parse error: unexpected identifier \"lol\"",
            ),
            ("1 + (", "1:6: parse error: unclosed left parenthesis"),
            ("sum(x) by", "1:10: parse error: unexpected end of input"),
            ("(1) (2)", "1:5: parse error: unexpected \"(\""),
            ("x + avg avg", "1:9: parse error: unexpected <aggr:avg>"),
            // Errors of the grammar's actions.
            (
                "x offset",
                "1:9: parse error: unexpected end of input in offset, expected duration",
            ),
            (
                "x + nosuch_fn(x)",
                "1:5: parse error: unknown function with name \"nosuch_fn\"",
            ),
            ("x[5m", "1:5: parse error: unclosed left bracket"),
        ] {
            assert_eq!(err(q), want, "{q}");
        }
    }

    #[test]
    fn errors_after_parsing_keep_their_text() {
        assert_eq!(
            err("rate(x)"),
            "expected type matrix in call to function 'rate', got vector"
        );
        assert!(parse("holt_winters(x[5m], 0.5, 0.5)").is_ok());
    }

    /// The grammar build.rs found must number its tokens as the crate does.
    #[test]
    fn grammar_file_matches_the_crate() {
        let t = tables().expect("grammar builds");
        for (name, id) in [
            ("EOF", token::T_EOF),
            ("IDENTIFIER", token::T_IDENTIFIER),
            ("LEFT_PAREN", token::T_LEFT_PAREN),
            ("ADD", token::T_ADD),
            ("SUM", token::T_SUM),
            ("BY", token::T_BY),
            ("OFFSET", token::T_OFFSET),
            ("STRING", token::T_STRING),
            ("NUMBER", token::T_NUMBER),
            ("DURATION", token::T_DURATION),
        ] {
            assert_eq!(t.grm.token_idx(name), Some(TIdx(id)), "{name}");
        }
        // Every expression the crate parses, the grammar accepts.
        for q in [
            "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m])) > 0.1",
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
            "x offset 5m * on(a) group_left(b) y @ 100",
            "topk(3, x) unless bottomk(2, y)",
            "-x ^ 2 % 3",
            "x[5m:1m]",
            "{__name__=\"x\"}",
        ] {
            assert!(promql_parser::parser::parse(q).is_ok(), "{q}");
            assert_eq!(syntax_error(q), None, "{q}");
        }
    }
}

/// TEMPORARY (until the own parser lands): vigil's extra functions for promql-parser.
fn register_extensions() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use promql_parser::parser::function::{Function, register_extra_functions};
        use promql_parser::parser::value::ValueType;
        let _ = register_extra_functions(vec![Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
        let _ = register_extra_functions(
            ["drift_psi", "drift_ks", "drift_jsd"]
                .into_iter()
                .map(|name| {
                    Function::new(
                        name,
                        vec![ValueType::Vector, ValueType::Vector],
                        0,
                        ValueType::Vector,
                        false,
                    )
                })
                .collect(),
        );
    });
}
