//! The postings index: label name → value → sorted series refs, with matcher fast paths.
//!
//! Selecting series is an intersection of sorted integer lists, one per matcher. A matcher is
//! first reduced to a [`FastMatcher`]: equality and alternations of literals (`a|b|c`) become
//! direct map lookups; `.*` needs no list at all; `.+` and literal prefixes (`foo.*`) compare
//! strings without running the regex; only other regexes are evaluated, once per distinct
//! value rather than once per series. A matcher that accepts the empty string also accepts
//! series without the label, so it becomes a list to subtract ("inverse") instead of one to
//! intersect, as Prometheus' `PostingsForMatchers` does.
//!
//! [`select`] is written over the [`PostingsIndex`] and [`SymbolLookup`] traits: the head's
//! [`Postings`] here and a block's memory-mapped index (`block::index`) both answer it.

use super::symbols::Sym;
use crate::reader::{PostingsIndex, SymbolLookup};
use ahash::AHashMap;
use std::borrow::Cow;
use vigil_model::{MatchOp, Matcher, SeriesRef};

/// Posting lists of the head.
#[derive(Default)]
pub struct Postings {
    by_name: AHashMap<Sym, AHashMap<Sym, Vec<SeriesRef>>>,
    /// Every series, sorted.
    all: Vec<SeriesRef>,
}

fn insert_sorted(list: &mut Vec<SeriesRef>, r: SeriesRef) {
    // Refs are handed out in increasing order, so this is nearly always a push.
    match list.last() {
        Some(&last) if last > r => {
            let i = list.partition_point(|&x| x < r);
            list.insert(i, r);
        }
        _ => list.push(r),
    }
}

fn remove_sorted(list: &mut Vec<SeriesRef>, r: SeriesRef) {
    if let Ok(i) = list.binary_search(&r) {
        list.remove(i);
    }
}

/// What one matcher contributes to a selection.
#[derive(Debug, PartialEq)]
enum Contribution {
    /// Series must be in this list.
    Positive(Vec<SeriesRef>),
    /// Series must not be in this list.
    Inverse(Vec<SeriesRef>),
    /// No constraint.
    All,
}

impl Postings {
    pub fn add(&mut self, r: SeriesRef, labels: &[(Sym, Sym)]) {
        for &(n, v) in labels {
            insert_sorted(self.by_name.entry(n).or_default().entry(v).or_default(), r);
        }
        insert_sorted(&mut self.all, r);
    }

    pub fn remove(&mut self, r: SeriesRef, labels: &[(Sym, Sym)]) {
        for &(n, v) in labels {
            if let Some(values) = self.by_name.get_mut(&n) {
                if let Some(list) = values.get_mut(&v) {
                    remove_sorted(list, r);
                    if list.is_empty() {
                        values.remove(&v);
                    }
                }
                if values.is_empty() {
                    self.by_name.remove(&n);
                }
            }
        }
        remove_sorted(&mut self.all, r);
    }
}

impl PostingsIndex for Postings {
    fn names(&self) -> Vec<Sym> {
        self.by_name.keys().copied().collect()
    }

    fn values(&self, name: Sym) -> Vec<Sym> {
        self.by_name
            .get(&name)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    fn postings(&self, name: Sym, value: Sym) -> Cow<'_, [SeriesRef]> {
        let list = self.by_name.get(&name).and_then(|m| m.get(&value));
        Cow::Borrowed(list.map_or(&[][..], Vec::as_slice))
    }

    fn all(&self) -> Cow<'_, [SeriesRef]> {
        Cow::Borrowed(&self.all)
    }

    fn postings_where(
        &self,
        name: Sym,
        keep: &mut dyn FnMut(Sym) -> bool,
        out: &mut Vec<SeriesRef>,
    ) {
        for (&v, l) in self.by_name.get(&name).into_iter().flatten() {
            if keep(v) {
                out.extend_from_slice(l);
            }
        }
    }
}

/// Sorted refs of the series matching every matcher, in the head or in a block.
pub(crate) fn select<P, S>(p: &P, matchers: &[Matcher], syms: &S) -> Vec<SeriesRef>
where
    P: PostingsIndex + ?Sized,
    S: SymbolLookup + ?Sized,
{
    let mut positive: Vec<Vec<SeriesRef>> = Vec::new();
    let mut inverse: Vec<Vec<SeriesRef>> = Vec::new();
    for m in matchers {
        match contribution(p, m, syms) {
            Contribution::Positive(l) => positive.push(l),
            Contribution::Inverse(l) => inverse.push(l),
            Contribution::All => {}
        }
    }
    positive.sort_by_key(Vec::len);
    let mut out = match positive.split_first() {
        Some((first, rest)) => rest.iter().fold(first.clone(), |acc, l| intersect(&acc, l)),
        None => p.all().into_owned(),
    };
    for l in &inverse {
        out = subtract(&out, l);
    }
    out
}

fn contribution<P, S>(p: &P, m: &Matcher, syms: &S) -> Contribution
where
    P: PostingsIndex + ?Sized,
    S: SymbolLookup + ?Sized,
{
    let fm = FastMatcher::new(m);
    let name = syms.lookup(&m.name);
    let list_of = |lits: &[&str]| -> Vec<SeriesRef> {
        let Some(n) = name else {
            return Vec::new();
        };
        let mut out: Vec<SeriesRef> = Vec::new();
        for v in lits.iter().filter_map(|l| syms.lookup(l)) {
            out.extend_from_slice(&p.postings(n, v));
        }
        out.sort_unstable();
        out.dedup();
        out
    };
    let scan = |keep: &dyn Fn(&str) -> bool| -> Vec<SeriesRef> {
        let Some(n) = name else {
            return Vec::new();
        };
        let mut out: Vec<SeriesRef> = Vec::new();
        p.postings_where(n, &mut |v| keep(syms.get(v)), &mut out);
        // Lists of different values of one name are disjoint: no dedup needed.
        out.sort_unstable();
        out
    };
    if fm.matches("") {
        if fm.is_any() {
            Contribution::All
        } else if let Some(lits) = fm.excluded_literals() {
            Contribution::Inverse(list_of(lits))
        } else {
            Contribution::Inverse(scan(&|v| !fm.matches(v)))
        }
    } else if let Some(lits) = fm.literals() {
        Contribution::Positive(list_of(lits))
    } else {
        Contribution::Positive(scan(&|v| fm.matches(v)))
    }
}

fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut j = 0;
    a.iter()
        .copied()
        .filter(|&x| {
            while j < b.len() && b[j] < x {
                j += 1;
            }
            !(j < b.len() && b[j] == x)
        })
        .collect()
}

/// A matcher reduced to the cheapest test that gives the same answers.
pub struct FastMatcher<'m> {
    negate: bool,
    kind: Kind<'m>,
}

enum Kind<'m> {
    /// One of these literal values.
    Literals(Vec<&'m str>),
    /// Starts with the prefix and has at least `min_rest` more bytes (`.*` is `("", 0)`).
    Prefix(&'m str, usize),
    Regex(&'m regex::Regex),
}

/// Characters that make a pattern more than a literal.
fn is_literal(s: &str) -> bool {
    !s.contains([
        '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
    ])
}

impl<'m> FastMatcher<'m> {
    pub fn new(m: &'m Matcher) -> Self {
        let (negate, kind) = match &m.op {
            MatchOp::Equal => (false, Kind::Literals(vec![m.value.as_str()])),
            MatchOp::NotEqual => (true, Kind::Literals(vec![m.value.as_str()])),
            MatchOp::RegexMatch(re) => (false, Self::analyze(&m.value, re)),
            MatchOp::RegexNoMatch(re) => (true, Self::analyze(&m.value, re)),
        };
        FastMatcher { negate, kind }
    }

    fn analyze(p: &'m str, re: &'m regex::Regex) -> Kind<'m> {
        for (suffix, min_rest) in [(".*", 0), (".+", 1)] {
            if let Some(prefix) = p.strip_suffix(suffix)
                && is_literal(prefix)
            {
                return Kind::Prefix(prefix, min_rest);
            }
        }
        let parts: Vec<&str> = p.split('|').collect();
        if parts.iter().all(|s| is_literal(s)) {
            return Kind::Literals(parts);
        }
        Kind::Regex(re)
    }

    pub fn matches(&self, v: &str) -> bool {
        let hit = match &self.kind {
            Kind::Literals(l) => l.contains(&v),
            Kind::Prefix(p, min_rest) => v.len() >= p.len() + min_rest && v.starts_with(p),
            Kind::Regex(re) => re.is_match(v),
        };
        hit != self.negate
    }

    fn is_any(&self) -> bool {
        !self.negate && matches!(self.kind, Kind::Prefix("", 0))
    }

    /// The exact values that match, when they are a known list.
    fn literals(&self) -> Option<&[&'m str]> {
        match &self.kind {
            Kind::Literals(l) if !self.negate => Some(l),
            _ => None,
        }
    }

    /// The exact values that do not match, when they are a known list.
    fn excluded_literals(&self) -> Option<&[&'m str]> {
        match &self.kind {
            Kind::Literals(l) if self.negate => Some(l),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::symbols::Symbols;

    fn index(series: &[&[(&str, &str)]]) -> (Symbols, Postings) {
        let syms = Symbols::default();
        let mut p = Postings::default();
        for (i, ls) in series.iter().enumerate() {
            let ls: Vec<(Sym, Sym)> = ls
                .iter()
                .map(|(n, v)| (syms.intern(n), syms.intern(v)))
                .collect();
            p.add(i as SeriesRef + 1, &ls);
        }
        (syms, p)
    }

    #[test]
    fn fast_paths_agree_with_the_regex() {
        let values = ["", "a", "ab", "abc", "b", "foo", "foobar", "x\ny", "a|b"];
        for pat in [
            ".*", ".+", "a|b", "foo.*", "foo.+", "a", "", "a.*|b", "(a|b)", "a\\|b", "[ab]+",
        ] {
            for neg in [false, true] {
                let m = if neg {
                    Matcher::not_regex("l", pat).unwrap()
                } else {
                    Matcher::regex("l", pat).unwrap()
                };
                let fm = FastMatcher::new(&m);
                for v in values {
                    assert_eq!(fm.matches(v), m.matches(v), "{m} on {v:?}");
                }
            }
        }
    }

    #[test]
    fn selects_with_every_operator() {
        let (syms, p) = index(&[
            &[("__name__", "up"), ("job", "a")],
            &[("__name__", "up"), ("job", "b")],
            &[("__name__", "up")],
            &[("__name__", "down"), ("job", "foo")],
        ]);
        let r = syms.reader();
        let sel = |ms: &[Matcher]| select(&p, ms, &r);
        let up = Matcher::equal("__name__", "up");
        assert_eq!(sel(std::slice::from_ref(&up)), [1, 2, 3]);
        assert_eq!(sel(&[up.clone(), Matcher::not_equal("job", "a")]), [2, 3]);
        assert_eq!(sel(&[up.clone(), Matcher::equal("job", "")]), [3]);
        assert_eq!(sel(&[up.clone(), Matcher::not_equal("job", "")]), [1, 2]);
        let re = |p: &str| Matcher::regex("job", p).unwrap();
        let nre = |p: &str| Matcher::not_regex("job", p).unwrap();
        assert_eq!(sel(&[re("a|b")]), [1, 2]);
        assert_eq!(sel(&[re(".+")]), [1, 2, 4]);
        assert_eq!(sel(&[up.clone(), re(".*")]), [1, 2, 3]);
        assert_eq!(sel(&[re("f.*")]), [4]);
        assert_eq!(sel(&[re("[ab]")]), [1, 2]);
        assert_eq!(sel(&[up.clone(), nre("a|c")]), [2, 3]);
        assert_eq!(sel(&[up.clone(), nre(".+")]), [3]);
        assert_eq!(sel(&[up, nre("[b]")]), [1, 3]);
        assert_eq!(sel(&[Matcher::equal("nope", "x")]), Vec::<SeriesRef>::new());
    }
}
