//! The pull parser: one [`Entry`] per metadata or sample line.

use std::borrow::Cow;

use memchr::memchr;

use crate::lex::{
    Escapes, is_label_char, is_label_start, is_metric_char, is_metric_start, parse_float,
    parse_ms_int, parse_om_timestamp, scan_quoted, scan_while, skip_ws, sub, unescape,
};
use crate::strict::Validator;
use crate::{Format, MetricType, ParseError};

/// One item of an exposition, borrowed from the body it was parsed from.
///
/// A `family` given as a quoted UTF-8 name (`# TYPE "my.metric" gauge`) is the text between
/// the quotes; escape sequences inside such a name are left as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP family text`, unescaped.
    Help { family: &'a str, help: Cow<'a, str> },
    /// `# TYPE family kind`.
    Type { family: &'a str, kind: MetricType },
    /// `# UNIT family unit` (OpenMetrics only).
    Unit { family: &'a str, unit: &'a str },
    /// One sample line.
    Sample(SampleEntry<'a>),
    /// One native-histogram sample (protobuf bodies only).
    Histogram(crate::proto::HistogramEntry<'a>),
}

/// One sample line: series, value, optional timestamp and exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleEntry<'a> {
    /// The raw series text as it appears in the body, name plus `{...}` (no value); the
    /// scrape cache's key.
    pub series: &'a [u8],
    /// The metric name (unescaped if it was quoted).
    pub name: Cow<'a, str>,
    pub value: f64,
    /// Milliseconds since the epoch (OpenMetrics' float seconds are converted).
    pub timestamp_ms: Option<i64>,
    /// OpenMetrics exemplar (`# {labels} value [timestamp]`).
    pub exemplar: Option<Exemplar<'a>>,
    /// Text between the braces, already validated by the parser unless `unchecked` is set.
    labels_src: &'a str,
    /// Set when the parser deferred the label syntax check (see
    /// [`Parser::defer_label_checks`]): what [`SampleEntry::check`] needs to run it.
    unchecked: Option<Unchecked<'a>>,
}

/// A sample line whose labels were not checked yet.
#[derive(Debug, Clone, PartialEq)]
struct Unchecked<'a> {
    line: &'a str,
    /// Index of the `{` in `line`.
    brace: usize,
    line_no: usize,
    format: Format,
}

/// An OpenMetrics exemplar. Parsing one allocates (the label vector); samples without
/// exemplars never do.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    pub labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl<'a> SampleEntry<'a> {
    /// A sample the protobuf parser made, whose series text it wrote itself.
    pub(crate) fn from_proto(
        series: &'a [u8],
        name: Cow<'a, str>,
        value: f64,
        timestamp_ms: Option<i64>,
        labels_src: &'a str,
    ) -> Self {
        SampleEntry {
            series,
            name,
            value,
            timestamp_ms,
            exemplar: None,
            labels_src,
            unchecked: None,
        }
    }

    /// The labels in body order, excluding the metric name, unescaped.
    ///
    /// This re-lexes the series text, which the parser validated, so it cannot fail; call it
    /// only on a scrape-cache miss.
    pub fn labels(&self) -> impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)> + '_ {
        LabelIter {
            src: self.labels_src,
            pos: 0,
        }
    }

    /// The (unescaped) value of the label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<Cow<'a, str>> {
        self.labels().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Checks the label syntax the parser skipped under [`Parser::defer_label_checks`]:
    /// the error it would have returned for this line, if any. Always `Ok` otherwise.
    pub fn check(&self) -> Result<(), ParseError> {
        let Some(u) = &self.unchecked else {
            return Ok(());
        };
        label_list(u.line, u.brace + 1, true, u.format, &mut Vec::new(), None)
            .map(|_| ())
            .map_err(|(at, message)| ParseError {
                line: u.line_no,
                column: at + 1,
                message,
            })
    }
}

/// The labels of `src` (the text between a series' braces, already validated).
pub(crate) fn label_iter(src: &str) -> LabelIter<'_> {
    LabelIter { src, pos: 0 }
}

pub(crate) struct LabelIter<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.src.as_bytes();
        loop {
            let mut i = scan_while(b, self.pos, |c| matches!(c, b' ' | b'\t' | b','));
            let (name, after) = match *b.get(i)? {
                b'"' => {
                    let close = scan_quoted(b, i + 1).ok()?;
                    (sub(self.src, i + 1, close), close + 1)
                }
                c if is_label_start(c) => {
                    let e = scan_while(b, i, is_label_char);
                    (sub(self.src, i, e), e)
                }
                _ => return None,
            };
            i = skip_ws(b, after);
            if b.get(i) != Some(&b'=') {
                // A quoted metric name inside the braces.
                self.pos = i;
                continue;
            }
            i = skip_ws(b, i + 1);
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let close = scan_quoted(b, i + 1).ok()?;
            let value = sub(self.src, i + 1, close);
            self.pos = close + 1;
            return Some((
                unescape(name, Escapes::Quoted),
                unescape(value, Escapes::Quoted),
            ));
        }
    }
}

/// A failure inside one line: byte offset in the line and message.
type LineError = (usize, String);
type LineResult<T> = Result<T, LineError>;

fn err<T>(at: usize, msg: impl Into<String>) -> LineResult<T> {
    Err((at, msg.into()))
}

/// Describes the byte at `i` for an error message.
fn found(line: &str, i: usize) -> String {
    match line.get(i..).and_then(|s| s.chars().next()) {
        None => "end of line".to_string(),
        Some(c) => format!("{c:?}"),
    }
}

/// A zero-copy pull parser over one scrape body. After an `Err` the iterator ends.
pub struct Parser<'a> {
    body: &'a [u8],
    /// The longest valid UTF-8 prefix of `body`; a line reaching past it is an error.
    text: &'a str,
    pos: usize,
    line_no: usize,
    format: Format,
    done: bool,
    /// Scratch for the duplicate-label check, reused across lines.
    names: Vec<&'a str>,
    validator: Option<Box<Validator>>,
    defer_label_checks: bool,
    /// Number of the line being parsed.
    current_line: usize,
}

impl<'a> Parser<'a> {
    /// A parser that checks the syntax of `format` (what a scrape needs, and about what
    /// Prometheus' own parsers check).
    pub fn new(body: &'a [u8], format: Format) -> Self {
        let text = match std::str::from_utf8(body) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or(""),
        };
        Parser {
            body,
            text,
            pos: 0,
            line_no: 1,
            format,
            done: false,
            names: Vec::new(),
            validator: None,
            defer_label_checks: false,
            current_line: 0,
        }
    }

    /// Leaves the label syntax of sample lines with a plain metric name unchecked until the
    /// caller asks ([`SampleEntry::check`]). For a caller that remembers the exact lines it
    /// has checked before, such as a scrape cache, and only needs to check new ones: the
    /// parser then only finds where the labels end. Ignored by [`Parser::strict`].
    pub fn defer_label_checks(mut self) -> Self {
        self.defer_label_checks = true;
        self
    }

    /// Also enforce the semantic rules of OpenMetrics 1.0 (metadata placement and
    /// repetition, family grouping, histogram/summary/stateset/info structure, counter
    /// values, exemplar placement and length, timestamp order), as a strict validator such
    /// as `promtool check metrics` would. Allocates per family; meant for validation, not
    /// for the scrape hot path. No effect on the text format 0.0.4.
    pub fn strict(mut self) -> Self {
        if self.format == Format::OpenMetrics {
            self.validator = Some(Box::default());
        }
        self
    }

    /// The format this parser reads.
    pub fn format(&self) -> Format {
        self.format
    }

    fn fail(
        &mut self,
        line: usize,
        column: usize,
        message: String,
    ) -> Option<Result<Entry<'a>, ParseError>> {
        self.done = true;
        Some(Err(ParseError {
            line,
            column,
            message,
        }))
    }

    fn finish(&mut self) -> Option<Result<Entry<'a>, ParseError>> {
        self.done = true;
        let line = self.line_no;
        if let Some(Err(e)) = self.validator.as_mut().map(|v| v.finish()) {
            return self.fail(line, 1, e.to_string());
        }
        None
    }

    fn parse_line(&mut self, line: &'a str) -> LineResult<Option<Entry<'a>>> {
        match self.format {
            Format::PrometheusText => {
                let line = line.strip_suffix('\r').unwrap_or(line);
                let b = line.as_bytes();
                let i = skip_ws(b, 0);
                match b.get(i) {
                    None => Ok(None),
                    Some(b'#') => self.text_comment(line, i + 1),
                    Some(_) => self.sample(line, i).map(Some),
                }
            }
            Format::PrometheusProto => err(0, "a protobuf body is read with ProtoParser"),
            Format::OpenMetrics => match line.as_bytes().first() {
                None => err(0, "empty lines are not allowed in OpenMetrics"),
                Some(b'#') => self.om_metadata(line).map(Some),
                Some(_) => self.sample(line, 0).map(Some),
            },
        }
    }

    /// A metric family name (plain or quoted) at `i`; returns it and the index after it.
    fn family(&self, line: &'a str, i: usize, after: &str) -> LineResult<(&'a str, usize)> {
        let b = line.as_bytes();
        match b.get(i) {
            Some(b'"') => {
                let close =
                    scan_quoted(b, i + 1).or_else(|e| err(e, "unterminated quoted metric name"))?;
                Ok((sub(line, i + 1, close), close + 1))
            }
            Some(&c) if is_metric_start(c) => {
                let e = scan_while(b, i, is_metric_char);
                Ok((sub(line, i, e), e))
            }
            _ => err(
                i,
                format!(
                    "expected metric name after {after}, found {}",
                    found(line, i)
                ),
            ),
        }
    }

    /// A `#` line of the text format 0.0.4; `i` is just after the `#`.
    fn text_comment(&mut self, line: &'a str, i: usize) -> LineResult<Option<Entry<'a>>> {
        let b = line.as_bytes();
        let i = skip_ws(b, i);
        let kw_end = scan_while(b, i, |c| c != b' ' && c != b'\t');
        let kw = sub(line, i, kw_end);
        if kw != "HELP" && kw != "TYPE" {
            return Ok(None);
        }
        let j = skip_ws(b, kw_end);
        let (family, k) = self.family(line, j, kw)?;
        if kw == "HELP" {
            let help = match b.get(k) {
                None => Cow::Borrowed(""),
                // Like Prometheus: one separator, the rest (spaces included) is the text.
                Some(b' ' | b'\t') => unescape(sub(line, k + 1, line.len()), Escapes::HelpText),
                Some(_) => {
                    return err(
                        k,
                        format!("expected whitespace after metric name {family:?}"),
                    );
                }
            };
            return Ok(Some(Entry::Help { family, help }));
        }
        let t = skip_ws(b, k);
        if t == k {
            return err(
                k,
                format!("expected whitespace and a type after metric name {family:?}"),
            );
        }
        let t_end = scan_while(b, t, |c| c != b' ' && c != b'\t');
        let word = sub(line, t, t_end);
        let kind = MetricType::from_text(word)
            .ok_or_else(|| (t, format!("invalid metric type {word:?}")))?;
        let rest = skip_ws(b, t_end);
        if rest < b.len() {
            return err(rest, "unexpected text after metric type");
        }
        Ok(Some(Entry::Type { family, kind }))
    }

    /// A `#` line of OpenMetrics other than `# EOF`.
    fn om_metadata(&mut self, line: &'a str) -> LineResult<Entry<'a>> {
        let b = line.as_bytes();
        if b.get(1) != Some(&b' ') {
            return err(
                1,
                "expected ' ' after '#' (OpenMetrics has no free comments)",
            );
        }
        let kw_end = scan_while(b, 2, |c| c != b' ');
        let kw = sub(line, 2, kw_end);
        if !matches!(kw, "HELP" | "TYPE" | "UNIT") {
            return err(
                2,
                format!("expected HELP, TYPE, UNIT or EOF after '# ', found {kw:?}"),
            );
        }
        if b.get(kw_end) != Some(&b' ') {
            return err(kw_end, format!("expected ' ' and a metric name after {kw}"));
        }
        let (family, k) = self.family(line, kw_end + 1, kw)?;
        if b.get(k) != Some(&b' ') {
            return err(
                k,
                format!(
                    "expected ' ' after metric name {family:?}, found {}",
                    found(line, k)
                ),
            );
        }
        let rest = sub(line, k + 1, line.len());
        match kw {
            "HELP" => Ok(Entry::Help {
                family,
                help: unescape(rest, Escapes::Quoted),
            }),
            "TYPE" => {
                let kind = MetricType::from_openmetrics(rest)
                    .ok_or_else(|| (k + 1, format!("invalid metric type {rest:?}")))?;
                Ok(Entry::Type { family, kind })
            }
            _ => {
                if let Some(bad) = rest.bytes().position(|c| !is_metric_char(c)) {
                    return err(k + 1 + bad, format!("invalid character in unit {rest:?}"));
                }
                Ok(Entry::Unit { family, unit: rest })
            }
        }
    }

    /// A sample line starting at `start`.
    fn sample(&mut self, line: &'a str, start: usize) -> LineResult<Entry<'a>> {
        let om = self.format == Format::OpenMetrics;
        let b = line.as_bytes();
        let mut i = start;
        let mut name: Option<Cow<'a, str>> = None;
        match b.get(i) {
            Some(&c) if is_metric_start(c) => {
                let e = scan_while(b, i, is_metric_char);
                name = Some(Cow::Borrowed(sub(line, i, e)));
                i = e;
            }
            Some(b'{') => {}
            _ => {
                return err(i, format!("expected metric name, found {}", found(line, i)));
            }
        }
        let mut labels_src = "";
        let mut unchecked = None;
        let brace = if om { i } else { skip_ws(b, i) };
        let deferred = self.defer_label_checks && self.validator.is_none() && name.is_some();
        if b.get(brace) == Some(&b'{') {
            // Deferred: only find the closing brace (a line that does not have one is checked
            // now, so its error comes out as before).
            let close = match deferred.then(|| labels_end(b, brace + 1)).flatten() {
                Some(close) => {
                    unchecked = Some(Unchecked {
                        line,
                        brace,
                        line_no: self.current_line,
                        format: self.format,
                    });
                    close
                }
                None => {
                    let (close, qname) = self.labels(line, brace + 1, name.is_some(), None)?;
                    name = qname.or(name);
                    close
                }
            };
            labels_src = sub(line, brace + 1, close);
            i = close + 1;
        }
        let Some(name) = name else {
            return err(
                start,
                "expected a metric name before '{' or as first item inside it",
            );
        };
        let series = b.get(start..i).unwrap_or(&[]);

        let tail = if om {
            self.om_tail(line, i)
        } else {
            text_tail(line, i).map(|(v, t)| (v, t, None))
        };
        let (value, timestamp_ms, exemplar) = match tail {
            Ok(tail) => tail,
            // A bad line reports its first error, as if the labels had been checked first.
            Err(e) if unchecked.is_some() => {
                self.labels(line, brace + 1, true, None)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(Entry::Sample(SampleEntry {
            series,
            name,
            value,
            timestamp_ms,
            exemplar,
            labels_src,
            unchecked,
        }))
    }

    /// Value, timestamp and exemplar of an OpenMetrics sample; `i` is just after the series.
    #[allow(clippy::type_complexity)]
    fn om_tail(
        &mut self,
        line: &'a str,
        i: usize,
    ) -> LineResult<(f64, Option<i64>, Option<Exemplar<'a>>)> {
        let b = line.as_bytes();
        if b.get(i) != Some(&b' ') {
            return err(
                i,
                format!(
                    "expected ' ' and a value after the series, found {}",
                    found(line, i)
                ),
            );
        }
        let (value, mut k) = om_number(line, i + 1, "value", parse_float)?;
        let mut ts = None;
        if k < b.len() && b.get(k + 1) != Some(&b'#') {
            let (t, e) = om_number(line, k + 1, "timestamp", parse_om_timestamp)?;
            ts = Some(t);
            k = e;
        }
        if k >= b.len() {
            return Ok((value, ts, None));
        }
        // b[k] == ' '
        let k = k + 1;
        if b.get(k) != Some(&b'#') {
            return err(
                k,
                format!(
                    "expected '#' to start an exemplar, found {}",
                    found(line, k)
                ),
            );
        }
        if b.get(k + 1) != Some(&b' ') || b.get(k + 2) != Some(&b'{') {
            return err(k, "expected '# {' to start an exemplar");
        }
        let mut labels = Vec::new();
        let (close, _) = self.labels(line, k + 3, true, Some(&mut labels))?;
        if b.get(close + 1) != Some(&b' ') {
            return err(
                close + 1,
                format!(
                    "expected ' ' and a value after the exemplar labels, found {}",
                    found(line, close + 1)
                ),
            );
        }
        let (ev, mut e) = om_number(line, close + 2, "exemplar value", parse_float)?;
        let mut ets = None;
        if e < b.len() {
            let (t, end) = om_number(line, e + 1, "exemplar timestamp", parse_om_timestamp)?;
            ets = Some(t);
            e = end;
        }
        if e < b.len() {
            return err(e, "unexpected text after the exemplar timestamp");
        }
        Ok((
            value,
            ts,
            Some(Exemplar {
                labels,
                value: ev,
                timestamp_ms: ets,
            }),
        ))
    }

    /// Lexes and validates a label set; `i` is just after `{`. Returns the index of `}` and
    /// the metric name if it was given as a quoted string inside the braces.
    #[allow(clippy::type_complexity)]
    fn labels(
        &mut self,
        line: &'a str,
        i: usize,
        has_name: bool,
        sink: Option<&mut Vec<(Cow<'a, str>, Cow<'a, str>)>>,
    ) -> LineResult<(usize, Option<Cow<'a, str>>)> {
        label_list(line, i, has_name, self.format, &mut self.names, sink)
    }
}

/// Lexes and validates a label set; `i` is just after `{`. Returns the index of `}` and
/// the metric name if it was given as a quoted string inside the braces.
#[allow(clippy::type_complexity)]
fn label_list<'a>(
    line: &'a str,
    mut i: usize,
    has_name: bool,
    format: Format,
    names: &mut Vec<&'a str>,
    mut sink: Option<&mut Vec<(Cow<'a, str>, Cow<'a, str>)>>,
) -> LineResult<(usize, Option<Cow<'a, str>>)> {
    let om = format == Format::OpenMetrics;
    let b = line.as_bytes();
    let ws = |i: usize| if om { i } else { skip_ws(b, i) };
    names.clear();
    let mut qname: Option<Cow<'a, str>> = None;
    let mut after_comma = false;
    loop {
        i = ws(i);
        let item = i;
        let (raw, quoted, after) = match b.get(i) {
            Some(b'}') if !after_comma || !om => return Ok((i, qname)),
            Some(b'"') => {
                let close =
                    scan_quoted(b, i + 1).or_else(|e| err(e, "unterminated quoted label name"))?;
                if close == i + 1 {
                    // `""`: neither a label name nor a metric name may be empty.
                    return err(i, "empty quoted name");
                }
                (sub(line, i + 1, close), true, close + 1)
            }
            Some(&c) if is_label_start(c) => {
                let e = scan_while(b, i, is_label_char);
                (sub(line, i, e), false, e)
            }
            _ => {
                return err(i, format!("expected label name, found {}", found(line, i)));
            }
        };
        i = ws(after);
        if quoted && sink.is_none() && matches!(b.get(i), Some(b',' | b'}')) {
            if has_name || qname.is_some() {
                return err(item, "metric name given twice");
            }
            qname = Some(unescape(raw, Escapes::Quoted));
        } else {
            if b.get(i) != Some(&b'=') {
                return err(
                    i,
                    format!(
                        "expected '=' after label name {raw:?}, found {}",
                        found(line, i)
                    ),
                );
            }
            i = ws(i + 1);
            if b.get(i) != Some(&b'"') {
                return err(
                    i,
                    format!(
                        "expected '\"' to start the value of label {raw:?}, found {}",
                        found(line, i)
                    ),
                );
            }
            let close = scan_quoted(b, i + 1)
                .or_else(|e| err(e, format!("unterminated value of label {raw:?}")))?;
            if names.iter().any(|n| same_name(n, raw)) {
                return err(item, format!("duplicate label name {raw:?}"));
            }
            names.push(raw);
            if let Some(sink) = sink.as_deref_mut() {
                sink.push((
                    unescape(raw, Escapes::Quoted),
                    unescape(sub(line, i + 1, close), Escapes::Quoted),
                ));
            }
            i = close + 1;
        }
        i = ws(i);
        match b.get(i) {
            Some(b',') => {
                after_comma = true;
                i += 1;
            }
            Some(b'}') => return Ok((i, qname)),
            _ => {
                return err(
                    i,
                    format!("expected ',' or '}}' after label, found {}", found(line, i)),
                );
            }
        }
    }
}

/// Where the label set that starts at `i` (just after `{`) ends: the index of the `}` that
/// is not inside a quoted string, or `None` if a string is not terminated or there is none.
fn labels_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i += memchr::memchr2(b'"', b'}', b.get(i..)?)?;
        if b[i] == b'}' {
            return Some(i);
        }
        i = scan_quoted(b, i + 1).ok()? + 1;
    }
}

/// Equality of two raw label names; unescapes only when both have escapes (the only case
/// where raw inequality can hide equality).
fn same_name(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    a.contains('\\')
        && b.contains('\\')
        && unescape(a, Escapes::Quoted) == unescape(b, Escapes::Quoted)
}

/// An OpenMetrics number token starting at `i` and ending at ' ' or the end of the line.
fn om_number<T>(
    line: &str,
    i: usize,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> LineResult<(T, usize)> {
    let b = line.as_bytes();
    let e = scan_while(b, i, |c| c != b' ');
    if e == i {
        return err(i, format!("expected {what}, found {}", found(line, i)));
    }
    let tok = sub(line, i, e);
    let v = parse(tok).ok_or_else(|| (i, format!("invalid {what} {tok:?}")))?;
    Ok((v, e))
}

/// Value and integer-millisecond timestamp of a text 0.0.4 sample; `i` is after the series.
fn text_tail(line: &str, i: usize) -> LineResult<(f64, Option<i64>)> {
    let b = line.as_bytes();
    let not_ws = |c: u8| c != b' ' && c != b'\t';
    let v = skip_ws(b, i);
    if v == b.len() {
        return err(v, "expected a value after the series");
    }
    if v == i {
        return err(
            i,
            format!(
                "expected whitespace after the series, found {}",
                found(line, i)
            ),
        );
    }
    let v_end = scan_while(b, v, not_ws);
    let tok = sub(line, v, v_end);
    let value = parse_float(tok).ok_or_else(|| (v, format!("invalid value {tok:?}")))?;
    let t = skip_ws(b, v_end);
    if t == b.len() {
        return Ok((value, None));
    }
    let t_end = scan_while(b, t, not_ws);
    let tok = sub(line, t, t_end);
    let ts = parse_ms_int(tok).ok_or_else(|| {
        (
            t,
            format!("invalid timestamp {tok:?} (expected integer milliseconds)"),
        )
    })?;
    let rest = skip_ws(b, t_end);
    if rest < b.len() {
        return err(rest, "unexpected text after the timestamp");
    }
    Ok((value, Some(ts)))
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            if self.pos >= self.body.len() {
                if self.format == Format::OpenMetrics {
                    // The line after the last newline, or the last line when the body does
                    // not end with one (there is no line after it).
                    let line = match self.body.last() {
                        Some(&c) if c != b'\n' => self.line_no - 1,
                        _ => self.line_no,
                    };
                    return self.fail(
                        line,
                        1,
                        "expected '# EOF' at the end of an OpenMetrics exposition".into(),
                    );
                }
                return self.finish();
            }
            let start = self.pos;
            let end = memchr(b'\n', &self.body[start..]).map_or(self.body.len(), |o| start + o);
            let line_no = self.line_no;
            self.current_line = line_no;
            self.line_no += 1;
            self.pos = end + 1;
            if end > self.text.len() {
                let column = self.text.len().saturating_sub(start) + 1;
                return self.fail(line_no, column, "invalid UTF-8".into());
            }
            let line = sub(self.text, start, end);
            if self.format == Format::OpenMetrics && line == "# EOF" {
                if self.pos < self.body.len() {
                    return self.fail(line_no + 1, 1, "unexpected text after '# EOF'".into());
                }
                return self.finish();
            }
            match self.parse_line(line) {
                Ok(None) => continue,
                Ok(Some(entry)) => {
                    if let Some(Err(e)) = self.validator.as_mut().map(|v| v.check(&entry)) {
                        return self.fail(line_no, 1, e.to_string());
                    }
                    return Some(Ok(entry));
                }
                Err((at, message)) => return self.fail(line_no, at + 1, message),
            }
        }
    }
}
