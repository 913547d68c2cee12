//! Parsing: the node tree of a template (text, actions, `if`/`range`/`with` with their
//! `else` branches) and the pipelines inside actions.
//!
//! Parsing is separate from execution so rule files can be checked when they load
//! (`rulefmt` parses every label and annotation) and so the tree is built once per
//! expansion however many times a `range` body runs.

use super::TemplateError;
use super::functions::func_known;
use super::lexer::{Part, Tok, lex_action, split};

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// A pipeline: optional variable declaration, then commands joined by `|`.
#[derive(Debug, Clone)]
pub(super) struct Pipe {
    pub(super) decl: Vec<String>,
    pub(super) declare: bool,
    pub(super) cmds: Vec<Vec<Arg>>,
}

/// One operand of a command.
#[derive(Debug, Clone)]
pub(super) enum Arg {
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
    pub(super) nodes: Vec<Node>,
}

/// Parses a template; errors read like Go's (`unexpected ...`).
pub fn parse(src: &str) -> Result<Template, TemplateError> {
    let parts = split(src)?;
    let mut p = Parser { parts, pos: 0 };
    let (nodes, end) = p.list()?;
    if let Some((e, line)) = end {
        return Err(TemplateError::parse(
            line,
            format!("unexpected {{{{{e}}}}}"),
        ));
    }
    Ok(Template { nodes })
}

struct Parser {
    parts: Vec<Part>,
    pos: usize,
}

enum End {
    End,
    Else(Option<Pipe>),
}

/// The nodes of a list, and the `end`/`else` that closed it with its line (None at EOF).
type List = (Vec<Node>, Option<(End, usize)>);

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::End => f.write_str("end"),
            End::Else(_) => f.write_str("else"),
        }
    }
}

impl Parser {
    /// Parses nodes until `end`/`else` (returned with its line) or the end of input (None).
    fn list(&mut self) -> Result<List, TemplateError> {
        let mut nodes = Vec::new();
        while self.pos < self.parts.len() {
            let Part { action, text, line } = self.parts[self.pos].clone();
            self.pos += 1;
            if !action {
                if !text.is_empty() {
                    nodes.push(Node::Text(text));
                }
                continue;
            }
            let t = text.trim();
            if t.starts_with("/*") {
                if !t.ends_with("*/") {
                    return Err(TemplateError::lex(line, "unclosed comment"));
                }
                continue;
            }
            let toks = lex_action(t, line)?;
            let first = match toks.first() {
                Some(Tok::Ident(w)) => w.as_str(),
                None => return Err(TemplateError::parse(line, "missing value for command")),
                _ => "",
            };
            match first {
                "end" => return Ok((nodes, Some((End::End, line)))),
                "else" => {
                    let rest = &toks[1..];
                    let cond = match rest.first() {
                        Some(Tok::Ident(w)) if w == "if" => Some(parse_pipe(&rest[1..], line)?),
                        None => None,
                        _ => return Err(TemplateError::parse(line, "unexpected token after else")),
                    };
                    return Ok((nodes, Some((End::Else(cond), line))));
                }
                "if" | "range" | "with" => {
                    let pipe = parse_pipe(&toks[1..], line)?;
                    nodes.push(self.control(first, pipe, line)?);
                }
                "define" | "template" | "block" => {
                    return Err(TemplateError::parse(
                        line,
                        format!("{{{{{first}}}}} is not supported in rule templates"),
                    ));
                }
                _ => nodes.push(Node::Action(parse_pipe(&toks, line)?)),
            }
        }
        Ok((nodes, None))
    }

    /// The body and `else` of a control structure opened on `line`.
    fn control(&mut self, kind: &str, pipe: Pipe, line: usize) -> Result<Node, TemplateError> {
        let (body, end) = self.list()?;
        let els = match end {
            None => {
                return Err(TemplateError::parse(
                    line,
                    format!("unexpected EOF in {kind}"),
                ));
            }
            Some((End::End, _)) => Vec::new(),
            Some((End::Else(None), _)) => {
                let (els, end) = self.list()?;
                match end {
                    Some((End::End, _)) => els,
                    _ => {
                        return Err(TemplateError::parse(
                            line,
                            format!("expected end after else in {kind}"),
                        ));
                    }
                }
            }
            Some((End::Else(Some(cond)), else_line)) => {
                // `else if c` is `else` + nested `if c ... end` sharing our `end`.
                vec![self.control("if", cond, else_line)?]
            }
        };
        Ok(match kind {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }
}

fn parse_pipe(toks: &[Tok], line: usize) -> Result<Pipe, TemplateError> {
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
                    return Err(TemplateError::parse(line, "missing command"));
                }
                cmds.push(std::mem::take(&mut cur));
                i += 1;
            }
            _ => {
                let (arg, n) = parse_operand(&rest[i..], line)?;
                cur.push(arg);
                i += n;
            }
        }
    }
    if cur.is_empty() {
        return Err(TemplateError::parse(line, "missing value for command"));
    }
    cmds.push(cur);
    Ok(Pipe {
        decl,
        declare,
        cmds,
    })
}

/// One operand and the number of tokens it used. Field chains follow their base.
fn parse_operand(toks: &[Tok], line: usize) -> Result<(Arg, usize), TemplateError> {
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
                        return Err(TemplateError::parse(
                            line,
                            format!("function {w:?} not defined"),
                        ));
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
            let end = end.ok_or_else(|| TemplateError::parse(line, "unclosed left paren"))?;
            let inner = parse_pipe(&toks[1..end], line)?;
            let (f, k) = chain(end + 1);
            Ok((Arg::Paren(Box::new(inner), f), k))
        }
        Tok::RParen => Err(TemplateError::parse(line, "unexpected right paren")),
        t => Err(TemplateError::parse(
            line,
            format!("unexpected {t:?} in operand"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::template::testing::run;

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
