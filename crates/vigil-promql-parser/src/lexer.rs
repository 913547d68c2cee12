//! The PromQL lexer, a port of the state machine of Prometheus' `promql/parser/lex.go`.
//!
//! It is a state machine rather than a plain tokenizer because PromQL's tokens depend on
//! context: inside braces keywords are plain identifiers, inside brackets only duration
//! expressions are allowed, and several error messages (`unclosed left parenthesis`,
//! `unexpected character inside braces`) come from the lexer. Following Prometheus' states
//! closely is what gives the same tokens and the same errors at the same positions.

use crate::ast::AggOp;

/// A token kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Eof,
    /// A lexer error; the item's value is the message.
    Error,
    Comment,
    Identifier,
    MetricIdentifier,
    Number,
    Duration,
    String,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    /// `=` (inside braces).
    Eql,
    Colon,
    // Operators.
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eqlc,
    Neq,
    Lte,
    Lss,
    Gte,
    Gtr,
    TrimUpper,
    TrimLower,
    EqlRegex,
    NeqRegex,
    At,
    Atan2,
    Land,
    Lor,
    Lunless,
    // Aggregators.
    Agg(AggOp),
    // Keywords.
    Bool,
    By,
    GroupLeft,
    GroupRight,
    Fill,
    FillLeft,
    FillRight,
    Ignoring,
    Offset,
    Smoothed,
    Anchored,
    On,
    Without,
    // Preprocessors.
    Start,
    End,
    Step,
    Range,
    MaxOf,
    MinOf,
}

impl Tok {
    fn is_operator(self) -> bool {
        use Tok::*;
        matches!(
            self,
            Add | Sub
                | Mul
                | Div
                | Mod
                | Pow
                | Eqlc
                | Neq
                | Lte
                | Lss
                | Gte
                | Gtr
                | TrimUpper
                | TrimLower
                | EqlRegex
                | NeqRegex
                | At
                | Atan2
                | Land
                | Lor
                | Lunless
        )
    }

    fn is_keyword(self) -> bool {
        use Tok::*;
        matches!(
            self,
            Bool | By
                | GroupLeft
                | GroupRight
                | Fill
                | FillLeft
                | FillRight
                | Ignoring
                | Offset
                | Smoothed
                | Anchored
                | On
                | Without
        )
    }

    /// Kinds with a fixed spelling (Go's `ItemTypeStr`).
    fn has_fixed_text(self) -> bool {
        !matches!(
            self,
            Tok::Eof
                | Tok::Error
                | Tok::Comment
                | Tok::Identifier
                | Tok::MetricIdentifier
                | Tok::Number
                | Tok::Duration
                | Tok::String
        )
    }
}

/// A lexed token: kind, byte offset, text as written.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub tok: Tok,
    pub pos: usize,
    pub val: String,
}

impl Item {
    pub fn end(&self) -> usize {
        self.pos + self.val.len()
    }

    /// How an unexpected item is named in errors (Go's `Item.desc`).
    pub fn desc(&self) -> String {
        if self.tok.has_fixed_text() {
            return self.string();
        }
        let kind = match self.tok {
            Tok::Eof => return "end of input".to_string(),
            Tok::Error => "error",
            Tok::Comment => "comment",
            Tok::Identifier => "identifier",
            Tok::MetricIdentifier => "metric identifier",
            Tok::String => "string",
            Tok::Number => "number",
            Tok::Duration => "duration",
            _ => unreachable!("fixed-text kinds handled above"),
        };
        format!("{kind} {}", self.string())
    }

    /// Go's `Item.String`.
    fn string(&self) -> String {
        match self.tok {
            Tok::Eof => "EOF".to_string(),
            Tok::Error => self.val.clone(),
            Tok::Identifier | Tok::MetricIdentifier => go_quote(&self.val),
            t if t.is_keyword() => format!("<{}>", self.val),
            t if t.is_operator() => format!("<op:{}>", self.val),
            Tok::Agg(_) => format!("<aggr:{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                format!("{}...", go_quote(&head))
            }
            _ => go_quote(&self.val),
        }
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `strconv.Quote` of bytes that need not be UTF-8: an invalid byte prints as `\xNN`.
pub fn go_quote_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 2);
    out.push('"');
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c, '"');
        }
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a rune.
pub(crate) fn go_quote_rune(c: Option<char>) -> String {
    let c = c.unwrap_or('\u{FFFD}');
    let mut out = String::from("'");
    // U+FFFD (also what Go prints for the end of input) is printable for Go's `%q`.
    if c == '\u{FFFD}' {
        out.push(c);
    } else {
        push_escaped(&mut out, c, '\'');
    }
    out.push('\'');
    out
}

/// Go's `%#U` of a rune.
fn go_unicode(c: Option<char>) -> String {
    let c = c.unwrap_or('\u{FFFD}');
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
        // Go prints an invalid byte as `\xff`; a lossily decoded one must not print raw,
        // as the lexer rejects a literal U+FFFD.
        '\u{FFFD}' => out.push_str("\\ufffd"),
        c if is_go_unprintable(c) => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => out.push(c),
    }
}

/// An approximation of the complement of Go's `unicode.IsPrint` for non-ASCII runes.
fn is_go_unprintable(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || (0x80..0xa0).contains(&u)
        || u == 0xad
        || (0x2000..=0x200f).contains(&u) && u != 0x2000
        || (0x2028..=0x202f).contains(&u)
        || (0x2060..=0x206f).contains(&u)
        || u == 0xfeff
        || (0xfff9..=0xfffb).contains(&u)
        || (0xe000..=0xf8ff).contains(&u)
        || u >= 0xf0000
}

fn keyword(word: &str) -> Option<Tok> {
    let lower = word.to_ascii_lowercase();
    if let Some(op) = AggOp::from_name(&lower) {
        return Some(Tok::Agg(op));
    }
    Some(match lower.as_str() {
        "and" => Tok::Land,
        "or" => Tok::Lor,
        "unless" => Tok::Lunless,
        "atan2" => Tok::Atan2,
        "offset" => Tok::Offset,
        "smoothed" => Tok::Smoothed,
        "anchored" => Tok::Anchored,
        "by" => Tok::By,
        "without" => Tok::Without,
        "on" => Tok::On,
        "ignoring" => Tok::Ignoring,
        "group_left" => Tok::GroupLeft,
        "group_right" => Tok::GroupRight,
        "fill" => Tok::Fill,
        "fill_left" => Tok::FillLeft,
        "fill_right" => Tok::FillRight,
        "bool" => Tok::Bool,
        "start" => Tok::Start,
        "end" => Tok::End,
        "step" => Tok::Step,
        "range" => Tok::Range,
        "max_of" => Tok::MaxOf,
        "min_of" => Tok::MinOf,
        "inf" | "nan" => Tok::Number,
        _ => return None,
    })
}

fn duration_keyword(word: &str) -> Option<Tok> {
    match word.to_ascii_lowercase().as_str() {
        "step" => Some(Tok::Step),
        "range" => Some(Tok::Range),
        "max_of" => Some(Tok::MaxOf),
        "min_of" => Some(Tok::MinOf),
        _ => None,
    }
}

fn is_duration_keyword_start(c: Option<char>) -> bool {
    matches!(c.map(|c| c.to_ascii_lowercase()), Some('s' | 'r' | 'm'))
}

fn is_space(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t' | '\n' | '\r'))
}

fn is_alpha(c: Option<char>) -> bool {
    matches!(c, Some(c) if c == '_' || c.is_ascii_alphabetic())
}

fn is_digit(c: Option<char>) -> bool {
    matches!(c, Some(c) if c.is_ascii_digit())
}

fn is_alnum(c: Option<char>) -> bool {
    is_alpha(c) || is_digit(c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Statements,
    InsideBraces,
    DurationExpr,
    Str,
    RawStr,
    Escape,
    Space,
    LineComment,
    NumberOrDuration,
    KeywordOrIdentifier,
    Identifier,
}

/// The lexer: call [`Lexer::next_item`] until it returns `Eof` or `Error`.
pub(crate) struct Lexer<'a> {
    input: &'a str,
    state: Option<State>,
    pos: usize,
    start: usize,
    width: usize,
    item: Option<Item>,
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    got_duration: bool,
    string_open: char,
}

impl<'a> Lexer<'a> {
    pub fn new(input: &'a str) -> Self {
        Lexer {
            input,
            state: Some(State::Statements),
            pos: 0,
            start: 0,
            width: 0,
            item: None,
            paren_depth: 0,
            brace_open: false,
            bracket_open: false,
            got_colon: false,
            got_duration: false,
            string_open: '"',
        }
    }

    /// The next item; after an error or the end, `Eof` forever.
    pub fn next_item(&mut self) -> Item {
        self.item = None;
        while self.item.is_none() {
            match self.state {
                Some(s) => self.state = self.step(s),
                None => self.emit(Tok::Eof),
            }
        }
        self.item.take().expect("item scanned")
    }

    fn next(&mut self) -> Option<char> {
        match self.input[self.pos..].chars().next() {
            None => {
                self.width = 0;
                None
            }
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn backup(&mut self) {
        self.pos -= self.width;
        self.width = 0;
    }

    fn emit(&mut self, tok: Tok) {
        self.item = Some(Item {
            tok,
            pos: self.start,
            val: self.input[self.start..self.pos].to_string(),
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.backup();
                false
            }
        }
    }

    fn is(&self, valid: &str) -> bool {
        matches!(self.peek(), Some(c) if valid.contains(c))
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn errorf(&mut self, msg: String) -> Option<State> {
        self.item = Some(Item {
            tok: Tok::Error,
            pos: self.start,
            val: msg,
        });
        None
    }

    fn step(&mut self, state: State) -> Option<State> {
        match state {
            State::Statements => self.lex_statements(),
            State::InsideBraces => self.lex_inside_braces(),
            State::DurationExpr => self.lex_duration_expr(),
            State::Str => self.lex_string(),
            State::RawStr => self.lex_raw_string(),
            State::Escape => self.lex_escape(),
            State::Space => {
                while is_space(self.peek()) {
                    self.next();
                }
                self.ignore();
                Some(State::Statements)
            }
            State::LineComment => {
                self.pos += 1;
                loop {
                    match self.next() {
                        None => break,
                        Some('\r' | '\n') => {
                            self.backup();
                            break;
                        }
                        Some(_) => {}
                    }
                }
                self.emit(Tok::Comment);
                Some(State::Statements)
            }
            State::NumberOrDuration => self.lex_number_or_duration(),
            State::KeywordOrIdentifier => self.lex_keyword_or_identifier(),
            State::Identifier => {
                while is_alnum(self.next()) {}
                self.backup();
                self.emit(Tok::Identifier);
                Some(State::Statements)
            }
        }
    }

    fn lex_statements(&mut self) -> Option<State> {
        if self.brace_open {
            return Some(State::InsideBraces);
        }
        if self.input[self.pos..].starts_with('#') {
            return Some(State::LineComment);
        }
        let r = self.next();
        match r {
            None => {
                if self.paren_depth != 0 {
                    return self.errorf("unclosed left parenthesis".into());
                }
                if self.bracket_open {
                    return self.errorf("unclosed left bracket".into());
                }
                self.emit(Tok::Eof);
                return None;
            }
            Some(',') => self.emit(Tok::Comma),
            _ if is_space(r) => return Some(State::Space),
            Some('*') => self.emit(Tok::Mul),
            Some('/') => self.emit(Tok::Div),
            Some('%') => self.emit(Tok::Mod),
            Some('+') => self.emit(Tok::Add),
            Some('-') => self.emit(Tok::Sub),
            Some('^') => self.emit(Tok::Pow),
            Some('=') => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Tok::Eqlc);
                }
                Some('~') => {
                    return self.errorf("unexpected character after '=': '~'".into());
                }
                _ => self.emit(Tok::Eql),
            },
            Some('!') => {
                let t = self.next();
                if t != Some('=') {
                    return self.errorf(format!(
                        "unexpected character after '!': {}",
                        go_quote_rune(t)
                    ));
                }
                self.emit(Tok::Neq);
            }
            Some('<') => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Tok::Lte);
                }
                Some('/') => {
                    self.next();
                    self.emit(Tok::TrimUpper);
                }
                _ => self.emit(Tok::Lss),
            },
            Some('>') => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Tok::Gte);
                }
                Some('/') => {
                    self.next();
                    self.emit(Tok::TrimLower);
                }
                _ => self.emit(Tok::Gtr),
            },
            _ if is_digit(r) || (r == Some('.') && is_digit(self.peek())) => {
                self.backup();
                return Some(State::NumberOrDuration);
            }
            Some(q @ ('"' | '\'')) => {
                self.string_open = q;
                return Some(State::Str);
            }
            Some('`') => {
                self.string_open = '`';
                return Some(State::RawStr);
            }
            _ if is_alpha(r) || r == Some(':') => {
                if !self.bracket_open {
                    self.backup();
                    return Some(State::KeywordOrIdentifier);
                }
                if r == Some(':') {
                    if self.got_colon {
                        return self.errorf("unexpected colon ':'".into());
                    }
                    self.emit(Tok::Colon);
                    self.got_colon = true;
                    return Some(State::Statements);
                }
                if is_duration_keyword_start(r) && self.scan_duration_keyword() {
                    return Some(State::Statements);
                }
                return self.errorf(format!(
                    "unexpected character: {}, expected ':'",
                    go_quote_rune(r)
                ));
            }
            Some('(') => {
                self.emit(Tok::LParen);
                self.paren_depth += 1;
            }
            Some(')') => {
                self.emit(Tok::RParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.errorf("unexpected right parenthesis ')'".into());
                }
            }
            Some('{') => {
                self.emit(Tok::LBrace);
                self.brace_open = true;
                return Some(State::InsideBraces);
            }
            Some('[') => {
                if self.bracket_open {
                    return self.errorf("unexpected left bracket '['".into());
                }
                self.got_colon = false;
                self.emit(Tok::LBracket);
                if is_space(self.peek()) {
                    while is_space(self.peek()) {
                        self.next();
                    }
                    self.ignore();
                }
                self.bracket_open = true;
                return Some(State::DurationExpr);
            }
            Some(']') => {
                if !self.bracket_open {
                    return self.errorf("unexpected right bracket ']'".into());
                }
                self.emit(Tok::RBracket);
                self.bracket_open = false;
            }
            Some('@') => self.emit(Tok::At),
            _ => {
                return self.errorf(format!("unexpected character: {}", go_quote_rune(r)));
            }
        }
        Some(State::Statements)
    }

    fn lex_inside_braces(&mut self) -> Option<State> {
        if self.input[self.pos..].starts_with('#') {
            return Some(State::LineComment);
        }
        let r = self.next();
        match r {
            None => return self.errorf("unexpected end of input inside braces".into()),
            _ if is_space(r) => return Some(State::Space),
            _ if is_alpha(r) => {
                self.backup();
                return Some(State::Identifier);
            }
            Some(',') => self.emit(Tok::Comma),
            Some(q @ ('"' | '\'')) => {
                self.string_open = q;
                return Some(State::Str);
            }
            Some('`') => {
                self.string_open = '`';
                return Some(State::RawStr);
            }
            Some('=') => {
                if self.next() == Some('~') {
                    self.emit(Tok::EqlRegex);
                } else {
                    self.backup();
                    self.emit(Tok::Eql);
                }
            }
            Some('!') => match self.next() {
                Some('~') => self.emit(Tok::NeqRegex),
                Some('=') => self.emit(Tok::Neq),
                nr => {
                    return self.errorf(format!(
                        "unexpected character after '!' inside braces: {}",
                        go_quote_rune(nr)
                    ));
                }
            },
            Some('{') => return self.errorf("unexpected left brace '{'".into()),
            Some('}') => {
                self.emit(Tok::RBrace);
                self.brace_open = false;
                return Some(State::Statements);
            }
            _ => {
                return self.errorf(format!(
                    "unexpected character inside braces: {}",
                    go_quote_rune(r)
                ));
            }
        }
        Some(State::InsideBraces)
    }

    fn lex_escape(&mut self) -> Option<State> {
        let mut ch = self.next();
        let (mut n, base, max): (u32, u32, u32) = match ch {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => return Some(State::Str),
            Some(c) if c == self.string_open => return Some(State::Str),
            Some('0'..='7') => (3, 8, 255),
            Some('x') => {
                ch = self.next();
                (2, 16, 255)
            }
            Some('u') => {
                ch = self.next();
                (4, 16, 0x10FFFF)
            }
            Some('U') => {
                ch = self.next();
                (8, 16, 0x10FFFF)
            }
            None => {
                self.errorf("escape sequence not terminated".into());
                return Some(State::Str);
            }
            Some(_) => {
                self.errorf(format!("unknown escape sequence {}", go_unicode(ch)));
                return Some(State::Str);
            }
        };
        let mut x: u32 = 0;
        while n > 0 {
            let d = ch.and_then(|c| c.to_digit(16)).unwrap_or(16);
            if d >= base {
                if ch.is_none() {
                    self.errorf("escape sequence not terminated".into());
                } else {
                    self.errorf(format!(
                        "illegal character {} in escape sequence",
                        go_unicode(ch)
                    ));
                }
                return Some(State::Str);
            }
            x = x.wrapping_mul(base).wrapping_add(d);
            n -= 1;
            if n > 0 {
                ch = self.next();
            }
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            self.errorf("escape sequence is an invalid Unicode code point".into());
        }
        Some(State::Str)
    }

    fn lex_string(&mut self) -> Option<State> {
        loop {
            match self.next() {
                Some('\\') => return Some(State::Escape),
                Some('\u{FFFD}') => {
                    self.errorf("invalid UTF-8 rune".into());
                    return Some(State::Str);
                }
                None | Some('\n') => return self.errorf("unterminated quoted string".into()),
                Some(c) if c == self.string_open => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::String);
        Some(State::Statements)
    }

    fn lex_raw_string(&mut self) -> Option<State> {
        loop {
            match self.next() {
                Some('\u{FFFD}') => {
                    self.errorf("invalid UTF-8 rune".into());
                    return Some(State::RawStr);
                }
                None => {
                    self.errorf("unterminated raw string".into());
                    return Some(State::RawStr);
                }
                Some(c) if c == self.string_open => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::String);
        Some(State::Statements)
    }

    fn scan_duration_keyword(&mut self) -> bool {
        loop {
            let r = self.next();
            if !is_alpha(r) {
                self.backup();
                let word = &self.input[self.start..self.pos];
                if let Some(tok) = duration_keyword(word) {
                    self.emit(tok);
                    return true;
                }
                return false;
            }
        }
    }

    fn lex_number_or_duration(&mut self) -> Option<State> {
        if self.scan_number() {
            self.emit(Tok::Number);
            return Some(State::Statements);
        }
        if self.accept_remaining_duration() {
            self.backup();
            self.emit(Tok::Duration);
            return Some(State::Statements);
        }
        let text = self.input[self.start..self.pos].to_string();
        self.errorf(format!(
            "bad number or duration syntax: {}",
            go_quote(&text)
        ))
    }

    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            while self.accept("0123456789") {}
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        !is_alnum(self.next())
    }

    fn scan_number(&mut self) -> bool {
        let initial = self.pos;
        let mut digits = "0123456789";
        if self.accept("0") && self.accept("xX") {
            self.accept("_");
            digits = "0123456789abcdefABCDEF";
        }
        self.accept(".");
        self.accept(digits);
        let mut dot = false;
        let mut exp = false;
        let all = format!("{digits}._eE");
        while self.is(&all) {
            if self.is(".") && dot {
                self.accept(".");
                return false;
            }
            if self.is("eE") && exp {
                self.accept("eE");
                return false;
            }
            if self.accept(".") {
                dot = true;
                if self.accept("_.") {
                    return false;
                }
                if digits.len() > 10 {
                    return false;
                }
                continue;
            }
            if self.accept("eE") {
                exp = true;
                self.accept("+-");
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            if self.accept("_") {
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            self.accept_run(digits);
        }
        if self.pos == initial {
            return false;
        }
        !is_alnum(self.peek())
    }

    fn lex_keyword_or_identifier(&mut self) -> Option<State> {
        loop {
            let r = self.next();
            if is_alnum(r) || r == Some(':') {
                continue;
            }
            self.backup();
            let word = &self.input[self.start..self.pos];
            match keyword(word) {
                Some(Tok::Fill | Tok::FillLeft | Tok::FillRight)
                    if !self.followed_by_left_paren() =>
                {
                    self.emit(Tok::Identifier)
                }
                Some(kw) => self.emit(kw),
                None if !word.contains(':') => self.emit(Tok::Identifier),
                None => self.emit(Tok::MetricIdentifier),
            }
            return Some(State::Statements);
        }
    }

    fn followed_by_left_paren(&self) -> bool {
        self.input[self.pos..]
            .chars()
            .find(|&c| !is_space(Some(c)))
            .is_some_and(|c| c == '(')
    }

    fn lex_duration_expr(&mut self) -> Option<State> {
        let r = self.next();
        match r {
            None => self.errorf("unexpected end of input in duration expression".into()),
            Some(']') => {
                self.emit(Tok::RBracket);
                self.bracket_open = false;
                self.got_colon = false;
                Some(State::Statements)
            }
            Some(':') => {
                self.emit(Tok::Colon);
                if !self.got_duration {
                    return self
                        .errorf("unexpected colon before duration in duration expression".into());
                }
                if self.got_colon {
                    return self.errorf("unexpected repeated colon in duration expression".into());
                }
                self.got_colon = true;
                Some(State::DurationExpr)
            }
            Some('(') => {
                self.emit(Tok::LParen);
                self.paren_depth += 1;
                Some(State::DurationExpr)
            }
            Some(')') => {
                self.emit(Tok::RParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.errorf("unexpected right parenthesis ')'".into());
                }
                Some(State::DurationExpr)
            }
            _ if is_space(r) => {
                while is_space(self.peek()) {
                    self.next();
                }
                self.ignore();
                Some(State::DurationExpr)
            }
            Some(c @ ('+' | '-' | '*' | '/' | '%' | '^' | ',')) => {
                self.emit(match c {
                    '+' => Tok::Add,
                    '-' => Tok::Sub,
                    '*' => Tok::Mul,
                    '/' => Tok::Div,
                    '%' => Tok::Mod,
                    '^' => Tok::Pow,
                    _ => Tok::Comma,
                });
                Some(State::DurationExpr)
            }
            _ if is_duration_keyword_start(r) => {
                if self.scan_duration_keyword() {
                    return Some(State::DurationExpr);
                }
                self.errorf(format!(
                    "unexpected character in duration expression: {}",
                    go_quote_rune(r)
                ))
            }
            _ if is_digit(r) || (r == Some('.') && is_digit(self.peek())) => {
                self.backup();
                self.got_duration = true;
                Some(State::NumberOrDuration)
            }
            _ => self.errorf(format!(
                "unexpected character in duration expression: {}",
                go_quote_rune(r)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(input: &str) -> Vec<(Tok, String)> {
        let mut l = Lexer::new(input);
        let mut out = Vec::new();
        loop {
            let it = l.next_item();
            let done = matches!(it.tok, Tok::Eof | Tok::Error);
            out.push((it.tok, it.val));
            if done {
                return out;
            }
        }
    }

    #[test]
    fn lexes_numbers_durations_keywords() {
        assert_eq!(
            toks("5m 0x1f 1e3 .5 Inf sum BY fill fill(")
                .into_iter()
                .map(|t| t.0)
                .collect::<Vec<_>>(),
            vec![
                Tok::Duration,
                Tok::Number,
                Tok::Number,
                Tok::Number,
                Tok::Number,
                Tok::Agg(AggOp::Sum),
                Tok::By,
                Tok::Identifier,
                Tok::Fill,
                Tok::LParen,
                Tok::Error
            ]
        );
    }

    #[test]
    fn lexer_errors() {
        let last = |s: &str| toks(s).pop().unwrap();
        assert_eq!(last("2.5.").1, r#"bad number or duration syntax: "2.5.""#);
        assert_eq!(
            last("0deadbeef").1,
            r#"bad number or duration syntax: "0de""#
        );
        assert_eq!(last("{a:b}").1, "unexpected character inside braces: ':'");
        assert_eq!(last(r#""\c""#).1, "unknown escape sequence U+0063 'c'");
        assert_eq!(
            last("foo[5s x 5s]").1,
            "unexpected character: 'x', expected ':'"
        );
    }
}
