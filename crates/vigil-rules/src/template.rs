//! The Go `text/template` subset that Prometheus alert labels and annotations use.
//!
//! Why our own: the Rust ports of Go templates take plain `fn` pointers as functions, but
//! `query` must reach the engine and storage of the evaluation that expands it, and Go's
//! number printing (`1e+06`, `%.4g`) must be exact for annotations to match Prometheus'.
//! The subset is what rule files use in practice: text, `{{- -}}` trimming, comments,
//! pipelines with `|`, variables (`$x := ...`, `$labels`, `$value`, `$externalLabels`,
//! `$externalURL`, `$`), field chains on maps and structs, parenthesised pipelines,
//! `if`/`else if`/`else`, `range` (with `$i, $v :=`), `with`, string/number/bool literals,
//! and Prometheus' function map plus Go's builtins (`printf`, `eq`, `len`, `index`, ...).
//! `define`/`template`/`block` are refused at parse time with a clear message.

use crate::gofmt;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    /// A `map[string]string` (label sets).
    Map(BTreeMap<String, String>),
    /// A struct with exported fields (the template data, a query sample).
    Struct(BTreeMap<String, Value>),
    List(Vec<Value>),
}

impl Value {
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Num(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Struct(_) => true,
            Value::List(l) => !l.is_empty(),
        }
    }

    /// How Go's `fmt.Print` shows the value.
    pub fn print(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Num(f) => gofmt::g(*f, None),
            Value::Str(s) => s.clone(),
            Value::Map(m) => format!(
                "map[{}]",
                m.iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Value::Struct(s) => format!(
                "{{{}}}",
                s.values().map(Value::print).collect::<Vec<_>>().join(" ")
            ),
            Value::List(l) => format!(
                "[{}]",
                l.iter().map(Value::print).collect::<Vec<_>>().join(" ")
            ),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Num(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map[string]string",
            Value::Struct(_) => "struct",
            Value::List(_) => "slice",
        }
    }

    fn to_f64(&self) -> Result<f64, String> {
        match self {
            Value::Int(i) => Ok(*i as f64),
            Value::Num(f) => Ok(*f),
            Value::Str(s) => s
                .trim()
                .parse::<f64>()
                .or_else(|_| parse_go_float(s.trim()))
                .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
            Value::Bool(_) | Value::Nil | Value::Map(_) | Value::Struct(_) | Value::List(_) => {
                Err(format!("can't convert {} to float", self.type_name()))
            }
        }
    }
}

fn parse_go_float(s: &str) -> Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => Err(()),
    }
}

/// One sample a `query` returned.
pub type QueryResult = Vec<(BTreeMap<String, String>, f64)>;

/// What expanding a template can reach beyond its data.
pub trait Env {
    /// Runs an instant query at the evaluation time.
    fn query(&self, q: &str) -> Result<QueryResult, String>;
    /// The `--web.external-url`.
    fn external_url(&self) -> String {
        String::new()
    }
}

/// An environment without storage (`query` fails).
pub struct NoQuery;
impl Env for NoQuery {
    fn query(&self, _: &str) -> Result<QueryResult, String> {
        Err("query is not available here".into())
    }
}

// ---------------------------------------------------------------------------------------
// Parse tree

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    declare: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Num(f64, bool),
    Bool(bool),
    Nil,
    Func(String),
    Paren(Box<Pipe>, Vec<String>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Field(String),
    Var(String),
    Str(String),
    Num(f64, bool),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

fn lex_action(s: &str) -> Result<Vec<Tok>, String> {
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '|' {
            out.push(Tok::Pipe);
            i += 1;
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == ',' {
            out.push(Tok::Comma);
            i += 1;
        } else if c == ':' && b.get(i + 1) == Some(&'=') {
            out.push(Tok::Declare);
            i += 2;
        } else if c == '=' {
            out.push(Tok::Assign);
            i += 1;
        } else if c == '"' {
            let mut v = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err("unterminated quoted string".into()),
                    Some('"') => break,
                    Some('\\') => {
                        i += 1;
                        match b.get(i) {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some('r') => v.push('\r'),
                            Some('\\') => v.push('\\'),
                            Some('"') => v.push('"'),
                            Some(c) => {
                                v.push('\\');
                                v.push(*c);
                            }
                            None => return Err("unterminated quoted string".into()),
                        }
                    }
                    Some(c) => v.push(*c),
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(v));
        } else if c == '`' {
            let start = i + 1;
            let end = b[start..]
                .iter()
                .position(|&c| c == '`')
                .ok_or("unterminated raw quoted string")?;
            out.push(Tok::Str(b[start..start + end].iter().collect()));
            i = start + end + 1;
        } else if c == '.' || c == '$' {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let word: String = b[start + 1..i].iter().collect();
            if c == '$' {
                out.push(Tok::Var(word));
            } else if word.is_empty() && matches!(b.get(i), Some(d) if d.is_ascii_digit()) {
                return Err("bad number syntax".into());
            } else {
                out.push(Tok::Field(word));
            }
        } else if c.is_ascii_digit()
            || ((c == '-' || c == '+')
                && matches!(b.get(i + 1), Some(d) if d.is_ascii_digit() || *d == '.'))
        {
            let start = i;
            i += 1;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric()
                    || b[i] == '.'
                    || ((b[i] == '-' || b[i] == '+') && matches!(b[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let t: String = b[start..i].iter().collect();
            let is_int = !t.contains(['.', 'e', 'E']);
            let v = if let Some(h) = t.strip_prefix("0x") {
                i64::from_str_radix(h, 16).map(|v| v as f64).map_err(|_| ())
            } else {
                t.parse::<f64>().map_err(|_| ())
            }
            .map_err(|_| format!("bad number syntax: {t:?}"))?;
            out.push(Tok::Num(v, is_int));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected {c:?} in command"));
        }
    }
    // Glue field chains: `.a.b` lexes as Field(a), Field(b) with no space between; we
    // cannot tell spacing here, so the parser treats consecutive fields after an operand
    // as a chain only when lexed adjacent. Re-lex adjacency from the source instead.
    Ok(out)
}

/// Splits source into text and `{{ }}` actions, applying trim markers.
fn split(src: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end();
        }
        out.push((false, text.to_string()));
        let inner_start = if trim_left { 2 } else { 0 };
        let body = &after[inner_start..];
        // Find the closing braces outside quoted strings.
        let close = find_close(body).ok_or("unclosed action")?;
        let mut inner = &body[..close];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_next = true;
        }
        out.push((true, inner.to_string()));
        rest = &body[close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    out.push((false, text.to_string()));
    Ok(out)
}

fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// Parses a template; errors read like Go's (`unexpected ...`).
pub fn parse(src: &str) -> Result<Template, String> {
    let parts = split(src)?;
    let mut p = Parser { parts, pos: 0 };
    let (nodes, end) = p.list()?;
    if let Some(e) = end {
        return Err(format!("unexpected {{{{{e}}}}}"));
    }
    Ok(Template { nodes })
}

struct Parser {
    parts: Vec<(bool, String)>,
    pos: usize,
}

enum End {
    End,
    Else(Option<Pipe>),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::End => f.write_str("end"),
            End::Else(_) => f.write_str("else"),
        }
    }
}

impl Parser {
    /// Parses nodes until `end`/`else` (returned) or the end of input (None).
    fn list(&mut self) -> Result<(Vec<Node>, Option<End>), String> {
        let mut nodes = Vec::new();
        while self.pos < self.parts.len() {
            let (is_action, s) = self.parts[self.pos].clone();
            self.pos += 1;
            if !is_action {
                if !s.is_empty() {
                    nodes.push(Node::Text(s));
                }
                continue;
            }
            let t = s.trim();
            if t.starts_with("/*") {
                if !t.ends_with("*/") {
                    return Err("unclosed comment".into());
                }
                continue;
            }
            let toks = lex_action(t)?;
            let first = match toks.first() {
                Some(Tok::Ident(w)) => w.as_str(),
                None => return Err("missing value for command".into()),
                _ => "",
            };
            match first {
                "end" => return Ok((nodes, Some(End::End))),
                "else" => {
                    let rest = &toks[1..];
                    let cond = match rest.first() {
                        Some(Tok::Ident(w)) if w == "if" => Some(parse_pipe(&rest[1..])?),
                        None => None,
                        _ => return Err("unexpected token after else".into()),
                    };
                    return Ok((nodes, Some(End::Else(cond))));
                }
                "if" | "range" | "with" => {
                    let pipe = parse_pipe(&toks[1..])?;
                    nodes.push(self.control(first, pipe)?);
                }
                "define" | "template" | "block" => {
                    return Err(format!(
                        "{{{{{first}}}}} is not supported in rule templates"
                    ));
                }
                _ => nodes.push(Node::Action(parse_pipe(&toks)?)),
            }
        }
        Ok((nodes, None))
    }

    fn control(&mut self, kind: &str, pipe: Pipe) -> Result<Node, String> {
        let (body, end) = self.list()?;
        let els = match end {
            None => return Err(format!("unexpected EOF in {kind}")),
            Some(End::End) => Vec::new(),
            Some(End::Else(None)) => {
                let (els, end) = self.list()?;
                match end {
                    Some(End::End) => els,
                    _ => return Err(format!("expected end after else in {kind}")),
                }
            }
            Some(End::Else(Some(cond))) => {
                // `else if c` is `else` + nested `if c ... end` sharing our `end`.
                vec![self.control("if", cond)?]
            }
        };
        Ok(match kind {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }
}

fn parse_pipe(toks: &[Tok]) -> Result<Pipe, String> {
    let mut decl = Vec::new();
    let mut declare = false;
    let mut rest = toks;
    // `$x :=`, `$x =`, `$i, $v :=`
    let mut j = 0;
    let mut vars = Vec::new();
    while let Some(Tok::Var(v)) = rest.get(j) {
        vars.push(v.clone());
        match rest.get(j + 1) {
            Some(Tok::Comma) => j += 2,
            Some(Tok::Declare) | Some(Tok::Assign) => {
                declare = rest.get(j + 1) == Some(&Tok::Declare);
                decl = vars.clone();
                rest = &rest[j + 2..];
                break;
            }
            _ => break,
        }
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    let mut cur: Vec<Arg> = Vec::new();
    while i < rest.len() {
        match &rest[i] {
            Tok::Pipe => {
                if cur.is_empty() {
                    return Err("missing command".into());
                }
                cmds.push(std::mem::take(&mut cur));
                i += 1;
            }
            _ => {
                let (arg, n) = parse_operand(&rest[i..])?;
                cur.push(arg);
                i += n;
            }
        }
    }
    if cur.is_empty() {
        return Err("missing value for command".into());
    }
    cmds.push(cur);
    Ok(Pipe {
        decl,
        declare,
        cmds,
    })
}

/// One operand and the number of tokens it used. Field chains follow their base.
fn parse_operand(toks: &[Tok]) -> Result<(Arg, usize), String> {
    let chain = |from: usize| -> (Vec<String>, usize) {
        let mut f = Vec::new();
        let mut k = from;
        while let Some(Tok::Field(name)) = toks.get(k) {
            if name.is_empty() {
                break;
            }
            f.push(name.clone());
            k += 1;
        }
        (f, k)
    };
    match &toks[0] {
        Tok::Field(name) => {
            let (mut f, k) = chain(1);
            if !name.is_empty() {
                f.insert(0, name.clone());
            }
            Ok((Arg::Dot(f), k))
        }
        Tok::Var(v) => {
            let (f, k) = chain(1);
            Ok((Arg::Var(v.clone(), f), k))
        }
        Tok::Str(s) => Ok((Arg::Str(s.clone()), 1)),
        Tok::Num(n, int) => Ok((Arg::Num(*n, *int), 1)),
        Tok::Ident(w) => Ok((
            match w.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                _ => {
                    if func_known(w) {
                        Arg::Func(w.clone())
                    } else {
                        return Err(format!("function {w:?} not defined"));
                    }
                }
            },
            1,
        )),
        Tok::LParen => {
            let mut depth = 0;
            let mut end = None;
            for (k, t) in toks.iter().enumerate() {
                match t {
                    Tok::LParen => depth += 1,
                    Tok::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(k);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or("unclosed left paren")?;
            let inner = parse_pipe(&toks[1..end])?;
            let (f, k) = chain(end + 1);
            Ok((Arg::Paren(Box::new(inner), f), k))
        }
        Tok::RParen => Err("unexpected right paren".into()),
        t => Err(format!("unexpected {t:?} in operand")),
    }
}

const FUNCS: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "match",
    "title",
    "toUpper",
    "toLower",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "stripPort",
    "stripDomain",
    "externalURL",
    "safeHtml",
    "parseDuration",
    "toTime",
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "urlquery",
    "html",
    "js",
];

fn func_known(name: &str) -> bool {
    FUNCS.contains(&name)
}

// ---------------------------------------------------------------------------------------
// Execution

struct Exec<'a> {
    vars: Vec<(String, Value)>,
    env: &'a dyn Env,
    out: String,
    steps: usize,
}

const MAX_STEPS: usize = 100_000;

impl Template {
    /// Executes with `data` as dot and `vars` predefined (`$` is the data).
    pub fn execute(
        &self,
        data: &Value,
        vars: &[(&str, Value)],
        env: &dyn Env,
    ) -> Result<String, String> {
        let mut ex = Exec {
            vars: vec![(String::new(), data.clone())],
            env,
            out: String::new(),
            steps: 0,
        };
        for (n, v) in vars {
            ex.vars.push((n.to_string(), v.clone()));
        }
        ex.nodes(&self.nodes, data)?;
        Ok(ex.out)
    }
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        for n in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err("template too expensive".into());
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.print());
                    }
                }
                Node::If(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if v.truthy() {
                        self.nodes(a, dot)
                    } else {
                        self.nodes(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::With(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if v.truthy() {
                        self.nodes(a, &v)
                    } else {
                        self.nodes(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, a, b) => {
                    let mark = self.vars.len();
                    let mut pp = p.clone();
                    let decl = std::mem::take(&mut pp.decl);
                    let v = self.pipe(&pp, dot)?;
                    let items: Vec<(Value, Value)> = match v {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Map(m) => m
                            .into_iter()
                            .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                            .collect(),
                        Value::Int(n) => (0..n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::Nil => Vec::new(),
                        other => return Err(format!("range can't iterate over {}", other.print())),
                    };
                    if items.is_empty() {
                        self.nodes(b, dot)?;
                    }
                    for (k, v) in items {
                        let inner = self.vars.len();
                        match decl.as_slice() {
                            [one] => self.vars.push((one.clone(), v.clone())),
                            [i, e] => {
                                self.vars.push((i.clone(), k));
                                self.vars.push((e.clone(), v.clone()));
                            }
                            _ => {}
                        }
                        self.nodes(a, &v)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, String> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Nil);
        if let Some(name) = p.decl.last() {
            if p.declare {
                self.vars.push((name.clone(), v.clone()));
            } else if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v.clone();
            } else {
                return Err(format!("undefined variable: ${name}"));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        args: &[Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, String> {
        if let Some(Arg::Func(name)) = args.first() {
            let mut vals = Vec::with_capacity(args.len());
            for a in &args[1..] {
                vals.push(self.operand(a, dot)?);
            }
            if let Some(p) = piped {
                vals.push(p);
            }
            return self.call(name, vals);
        }
        if args.len() > 1 || piped.is_some() {
            return Err(format!("can't give argument to non-function {:?}", args[0]));
        }
        self.operand(&args[0], dot)
    }

    fn operand(&mut self, a: &Arg, dot: &Value) -> Result<Value, String> {
        match a {
            Arg::Dot(f) => fields(dot.clone(), f),
            Arg::Var(name, f) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: ${name}"))?;
                fields(v, f)
            }
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Num(n, true) => Ok(Value::Int(*n as i64)),
            Arg::Num(n, false) => Ok(Value::Num(*n)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Nil),
            Arg::Func(name) => self.call(name, Vec::new()),
            Arg::Paren(p, f) => {
                let mark = self.vars.len();
                let v = self.pipe(p, dot);
                self.vars.truncate(mark);
                fields(v?, f)
            }
        }
    }

    fn call(&mut self, name: &str, a: Vec<Value>) -> Result<Value, String> {
        let want = |n: usize| -> Result<(), String> {
            if a.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    a.len()
                ))
            }
        };
        let s = |v: &Value| v.print();
        Ok(match name {
            "query" => {
                want(1)?;
                let res = self.env.query(&s(&a[0]))?;
                Value::List(res.into_iter().map(|(l, v)| sample_value(l, v)).collect())
            }
            "first" => {
                want(1)?;
                match &a[0] {
                    Value::List(l) => l
                        .first()
                        .cloned()
                        .ok_or("first() called on vector with no elements")?,
                    other => {
                        return Err(format!(
                            "first: expected a query result, got {}",
                            other.type_name()
                        ));
                    }
                }
            }
            "label" => {
                want(2)?;
                let v = fields(a[1].clone(), &["Labels".to_string()])?;
                fields(v, &[s(&a[0])])?
            }
            "value" => {
                want(1)?;
                fields(a[0].clone(), &["Value".to_string()])?
            }
            "strvalue" => {
                want(1)?;
                let l = fields(a[0].clone(), &["Labels".to_string()])?;
                fields(l, &["__value__".to_string()])?
            }
            "args" => {
                let mut m = BTreeMap::new();
                for (i, v) in a.into_iter().enumerate() {
                    m.insert(format!("arg{i}"), v);
                }
                Value::Struct(m)
            }
            "reReplaceAll" => {
                want(3)?;
                let re = regex::Regex::new(&s(&a[0])).map_err(|e| e.to_string())?;
                Value::Str(re.replace_all(&s(&a[2]), s(&a[1]).as_str()).into_owned())
            }
            "match" => {
                want(2)?;
                let re = regex::Regex::new(&s(&a[0])).map_err(|e| e.to_string())?;
                Value::Bool(re.is_match(&s(&a[1])))
            }
            "title" => {
                want(1)?;
                Value::Str(title(&s(&a[0])))
            }
            "toUpper" => {
                want(1)?;
                Value::Str(s(&a[0]).to_uppercase())
            }
            "toLower" => {
                want(1)?;
                Value::Str(s(&a[0]).to_lowercase())
            }
            "sortByLabel" => {
                want(2)?;
                let key = s(&a[0]);
                let Value::List(mut l) = a[1].clone() else {
                    return Err("sortByLabel: expected a query result".into());
                };
                l.sort_by_key(|v| {
                    fields(v.clone(), &["Labels".to_string(), key.clone()])
                        .map(|v| v.print())
                        .unwrap_or_default()
                });
                Value::List(l)
            }
            "humanize" => {
                want(1)?;
                Value::Str(humanize(a[0].to_f64()?))
            }
            "humanize1024" => {
                want(1)?;
                Value::Str(humanize1024(a[0].to_f64()?))
            }
            "humanizeDuration" => {
                want(1)?;
                Value::Str(humanize_duration(a[0].to_f64()?))
            }
            "humanizePercentage" => {
                want(1)?;
                Value::Str(format!("{}%", gofmt::g(a[0].to_f64()? * 100.0, Some(4))))
            }
            "humanizeTimestamp" => {
                want(1)?;
                Value::Str(humanize_timestamp(a[0].to_f64()?))
            }
            "toTime" => {
                want(1)?;
                Value::Str(humanize_timestamp(a[0].to_f64()?))
            }
            "parseDuration" => {
                want(1)?;
                let d: vigil_model::Duration = s(&a[0])
                    .parse()
                    .map_err(|e: vigil_model::DurationError| e.to_string())?;
                Value::Num(d.as_secs_f64())
            }
            "stripPort" => {
                want(1)?;
                let h = s(&a[0]);
                Value::Str(strip_port(&h))
            }
            "stripDomain" => {
                want(1)?;
                let h = s(&a[0]);
                let (host, port) = match h.rsplit_once(':') {
                    Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                        (h.to_string(), format!(":{p}"))
                    }
                    _ => (h.clone(), String::new()),
                };
                let short = if host.parse::<std::net::IpAddr>().is_ok() {
                    host
                } else {
                    host.split('.').next().unwrap_or("").to_string()
                };
                Value::Str(short + &port)
            }
            "externalURL" => Value::Str(self.env.external_url()),
            "safeHtml" | "html" | "js" | "urlquery" => {
                let joined: String = a.iter().map(s).collect();
                Value::Str(match name {
                    "urlquery" => url_escape(&joined),
                    "html" => joined
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                        .replace('"', "&#34;")
                        .replace('\'', "&#39;"),
                    _ => joined,
                })
            }
            "and" => {
                let mut last = Value::Nil;
                for v in a {
                    if !v.truthy() {
                        return Ok(v);
                    }
                    last = v;
                }
                last
            }
            "or" => {
                let mut last = Value::Nil;
                for v in a {
                    if v.truthy() {
                        return Ok(v);
                    }
                    last = v;
                }
                last
            }
            "not" => {
                want(1)?;
                Value::Bool(!a[0].truthy())
            }
            "len" => {
                want(1)?;
                Value::Int(match &a[0] {
                    Value::Str(s) => s.len(),
                    Value::Map(m) => m.len(),
                    Value::List(l) => l.len(),
                    Value::Struct(m) => m.len(),
                    other => return Err(format!("len of type {}", other.type_name())),
                } as i64)
            }
            "index" => {
                let mut it = a.into_iter();
                let mut v = it.next().ok_or("wrong number of args for index")?;
                for k in it {
                    v = match (v, k) {
                        (Value::Map(m), k) => {
                            Value::Str(m.get(&k.print()).cloned().unwrap_or_default())
                        }
                        (Value::List(l), Value::Int(i)) => l
                            .get(usize::try_from(i).map_err(|_| "index out of range")?)
                            .cloned()
                            .ok_or("index out of range")?,
                        (v, _) => {
                            return Err(format!("can't index item of type {}", v.type_name()));
                        }
                    };
                }
                v
            }
            "print" | "println" => {
                // Go's Sprint adds spaces between operands when neither is a string.
                let mut out = String::new();
                for (i, v) in a.iter().enumerate() {
                    if i > 0
                        && (name == "println"
                            || (!matches!(v, Value::Str(_)) && !matches!(a[i - 1], Value::Str(_))))
                    {
                        out.push(' ');
                    }
                    out.push_str(&v.print());
                }
                if name == "println" {
                    out.push('\n');
                }
                Value::Str(out)
            }
            "printf" => {
                let fmt = a.first().map(s).ok_or("wrong number of args for printf")?;
                Value::Str(sprintf(&fmt, &a[1..]))
            }
            "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
                if a.len() < 2 {
                    return Err(format!("missing argument for comparison {name}"));
                }
                let ord = compare(&a[0], &a[1])?;
                use std::cmp::Ordering::*;
                let r = match name {
                    "eq" => a[1..]
                        .iter()
                        .any(|b| compare(&a[0], b).ok() == Some(Some(Equal))),
                    "ne" => ord != Some(Equal),
                    "lt" => ord == Some(Less),
                    "le" => matches!(ord, Some(Less | Equal)),
                    "gt" => ord == Some(Greater),
                    _ => matches!(ord, Some(Greater | Equal)),
                };
                Value::Bool(r)
            }
            other => return Err(format!("function {other:?} not defined")),
        })
    }
}

fn compare(a: &Value, b: &Value) -> Result<Option<std::cmp::Ordering>, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(Some(x.cmp(y))),
        (Value::Bool(x), Value::Bool(y)) => Ok(Some(x.cmp(y))),
        (Value::Int(x), Value::Int(y)) => Ok(Some(x.cmp(y))),
        (Value::Int(_) | Value::Num(_), Value::Int(_) | Value::Num(_)) => {
            Ok(a.to_f64()?.partial_cmp(&b.to_f64()?))
        }
        (Value::Nil, Value::Nil) => Ok(Some(std::cmp::Ordering::Equal)),
        _ => Err("incompatible types for comparison".into()),
    }
}

fn sample_value(labels: BTreeMap<String, String>, v: f64) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Labels".into(), Value::Map(labels));
    m.insert("Value".into(), Value::Num(v));
    Value::Struct(m)
}

fn fields(mut v: Value, f: &[String]) -> Result<Value, String> {
    for name in f {
        v = match v {
            Value::Map(m) => Value::Str(m.get(name).cloned().unwrap_or_default()),
            Value::Struct(mut s) => s
                .remove(name)
                .ok_or_else(|| format!("can't evaluate field {name} in type struct"))?,
            Value::Nil => return Err(format!("nil pointer evaluating .{name}")),
            other => {
                return Err(format!(
                    "can't evaluate field {name} in type {}",
                    other.type_name()
                ));
            }
        };
    }
    Ok(v)
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn strip_port(h: &str) -> String {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match h.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_string(),
        _ => h.to_string(),
    }
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", gofmt::g(v, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", gofmt::g(v, Some(4)))
}

/// Prometheus' `humanizeDuration`: `1d 2h 3m 4s`, or `1.5s`, `20ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", gofmt::g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {mins}m {secs}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {mins}m {secs}s");
        }
        if mins != 0 {
            return format!("{sign}{mins}m {secs}s");
        }
        return format!("{sign}{}s", gofmt::g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", gofmt::g(v, Some(4)))
}

/// Prometheus' `humanizeTimestamp`: Go's `time.Time.String()` in UTC.
pub fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return gofmt::g(v, Some(4));
    }
    // Prometheus goes through model.Time: nanoseconds truncated to milliseconds.
    let ms = ((v * 1e9) as i64).div_euclid(1_000_000);
    format!(
        "{} +0000 UTC",
        datetime(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
    )
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` of a Unix time (fraction trimmed as Go's `.999999999`).
pub fn datetime(secs: i64, nanos: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        let _ = write!(s, ".{}", frac.trim_end_matches('0'));
    }
    s
}

/// Howard Hinnant's days-to-civil algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

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
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
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
        let w: usize = width.parse().unwrap_or(0);
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

/// The data and variables of an alert's templates, as Prometheus defines them.
pub struct AlertData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

/// Expands one label or annotation template of an alert. On error Prometheus keeps going
/// with `<error expanding template: ...>` as the value; so do we.
pub fn expand_alert(name: &str, text: &str, data: &AlertData<'_>, env: &dyn Env) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let result = parse(text).and_then(|t| {
        let mut root = BTreeMap::new();
        root.insert("Labels".to_string(), Value::Map(data.labels.clone()));
        root.insert(
            "ExternalLabels".to_string(),
            Value::Map(data.external_labels.clone()),
        );
        root.insert(
            "ExternalURL".to_string(),
            Value::Str(data.external_url.to_string()),
        );
        root.insert("Value".to_string(), Value::Num(data.value));
        let vars = [
            ("labels", Value::Map(data.labels.clone())),
            ("externalLabels", Value::Map(data.external_labels.clone())),
            ("externalURL", Value::Str(data.external_url.to_string())),
            ("value", Value::Num(data.value)),
        ];
        t.execute(&Value::Struct(root), &vars, env)
    });
    match result {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: template: __alert_{name}: {e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;
    impl Env for Fake {
        fn query(&self, q: &str) -> Result<QueryResult, String> {
            let mut l = BTreeMap::new();
            l.insert("instance".to_string(), format!("{q}-host"));
            Ok(vec![(l, 42.5)])
        }
    }

    fn run(src: &str, value: f64) -> String {
        let mut labels = BTreeMap::new();
        labels.insert("instance".to_string(), "localhost:8000".to_string());
        labels.insert("job".to_string(), "ml".to_string());
        let mut ext = BTreeMap::new();
        ext.insert("cluster".to_string(), "eu1".to_string());
        expand_alert(
            "T",
            src,
            &AlertData {
                labels: &labels,
                external_labels: &ext,
                external_url: "http://vigil:9090",
                value,
            },
            &Fake,
        )
    }

    #[test]
    fn variables_and_fields() {
        assert_eq!(
            run("High on {{ $labels.instance }}", 1.0),
            "High on localhost:8000"
        );
        assert_eq!(
            run("{{ .Labels.job }}/{{ $externalLabels.cluster }}", 1.0),
            "ml/eu1"
        );
        assert_eq!(run("v={{ $value }}", 0.6123), "v=0.6123");
        assert_eq!(run("v={{ $value }}", 1e6), "v=1e+06");
        assert_eq!(run("{{ $labels.missing }}", 1.0), "");
        assert_eq!(
            run("{{ $.Labels.job }} {{$externalURL}}", 1.0),
            "ml http://vigil:9090"
        );
    }

    #[test]
    fn humanize_family() {
        assert_eq!(run("{{ humanize 1234567.0 }}", 0.0), "1.235M");
        assert_eq!(run("{{ $value | humanize }}", 0.0012), "1.2m");
        assert_eq!(run("{{ humanize1024 1048576.0 }}", 0.0), "1Mi");
        assert_eq!(run("{{ humanizeDuration 93784.0 }}", 0.0), "1d 2h 3m 4s");
        assert_eq!(run("{{ humanizeDuration 1.5 }}", 0.0), "1.5s");
        assert_eq!(run("{{ humanizeDuration 0.02 }}", 0.0), "20ms");
        assert_eq!(run("{{ humanizePercentage 0.1234 }}", 0.0), "12.34%");
        assert_eq!(
            run("{{ humanizeTimestamp 1435065584.128 }}", 0.0),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(run("{{ humanize \"2048\" }}", 0.0), "2.048k");
    }

    #[test]
    fn printf_and_strings() {
        assert_eq!(run("{{ printf \"%.2f\" $value }}", 0.61234), "0.61");
        assert_eq!(run("{{ printf \"%s=%d\" \"a\" 3 }}", 0.0), "a=3");
        assert_eq!(
            run("{{ printf \"%5.1f|%-4s|\" 2.25 \"x\" }}", 0.0),
            "  2.2|x   |"
        );
        assert_eq!(run("{{ \"hello world\" | title }}", 0.0), "Hello World");
        assert_eq!(run("{{ toUpper \"ab\" }}{{ toLower \"CD\" }}", 0.0), "ABcd");
        assert_eq!(
            run(
                "{{ reReplaceAll \"(.*):(.*)\" \"$1\" $labels.instance }}",
                0.0
            ),
            "localhost"
        );
    }

    #[test]
    fn query_first_value_label() {
        assert_eq!(run("{{ query \"up\" | first | value }}", 0.0), "42.5");
        assert_eq!(
            run(
                "{{ with query \"up\" }}{{ . | first | label \"instance\" }}{{ end }}",
                0.0
            ),
            "up-host"
        );
        assert_eq!(
            run(
                "{{ range query \"up\" }}{{ .Labels.instance }}={{ .Value }};{{ end }}",
                0.0
            ),
            "up-host=42.5;"
        );
    }

    #[test]
    fn control_flow_and_trim() {
        assert_eq!(
            run("{{ if gt $value 0.5 }}high{{ else }}low{{ end }}", 0.7),
            "high"
        );
        assert_eq!(
            run(
                "{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}",
                0.2
            ),
            "mid"
        );
        assert_eq!(run("a  {{- \"b\" -}}  c", 0.0), "abc");
        assert_eq!(run("{{/* note */}}x{{ $x := 3 }}{{ $x }}", 0.0), "x3");
        assert_eq!(
            run(
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}",
                0.0
            ),
            "instance=localhost:8000,job=ml,"
        );
        assert_eq!(
            run("{{ len $labels }} {{ index $labels \"job\" }}", 0.0),
            "2 ml"
        );
    }

    #[test]
    fn errors_are_reported_not_panics() {
        assert!(parse("{{ $labels.x ").is_err());
        assert!(parse("{{ if 1 }}x").is_err());
        assert!(parse("{{ nosuchfunc 1 }}").is_err());
        assert!(parse("{{ end }}").is_err());
        assert!(
            run("{{ .Labels.x.y.z }}", 0.0).is_empty()
                || run("{{ .Nope }}", 0.0).starts_with("<error expanding template")
        );
        assert!(run("{{ first 1 }}", 0.0).starts_with("<error expanding template"));
    }
}
