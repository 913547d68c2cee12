//! Interned label strings.
//!
//! A million series share a few thousand distinct names and values; each is stored once and
//! series hold 4-byte symbol ids, so a series' label set costs 8 bytes per label instead of two
//! heap strings. Symbols are never removed while the process runs (a series that is garbage
//! collected leaves its strings behind); a restart from a snapshot drops the unused ones.

use crate::reader::SymbolLookup;
use ahash::AHashMap;
use parking_lot::RwLock;
use std::sync::Arc;

/// A symbol id.
pub type Sym = u32;

#[derive(Default)]
struct Table {
    ids: AHashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
}

/// The symbol table: string ↔ id, safe to share between threads.
#[derive(Default)]
pub struct Symbols {
    table: RwLock<Table>,
}

impl Symbols {
    /// The id of `s`, adding it when new.
    pub fn intern(&self, s: &str) -> Sym {
        if let Some(&id) = self.table.read().ids.get(s) {
            return id;
        }
        let mut t = self.table.write();
        if let Some(&id) = t.ids.get(s) {
            return id;
        }
        let id = t.strings.len() as Sym;
        let s: Arc<str> = Arc::from(s);
        t.strings.push(s.clone());
        t.ids.insert(s, id);
        id
    }

    /// A read view for resolving many ids without re-locking.
    pub fn reader(&self) -> SymbolsReader<'_> {
        SymbolsReader {
            t: self.table.read(),
        }
    }
}

/// Resolves ids while holding the table's read lock.
pub struct SymbolsReader<'a> {
    t: parking_lot::RwLockReadGuard<'a, Table>,
}

impl SymbolsReader<'_> {
    /// The string of `id` (empty for an unknown id, which only a bug produces).
    pub fn get(&self, id: Sym) -> &str {
        self.t.strings.get(id as usize).map_or("", |s| s)
    }

    pub fn lookup(&self, s: &str) -> Option<Sym> {
        self.t.ids.get(s).copied()
    }
}

impl SymbolLookup for SymbolsReader<'_> {
    fn get(&self, id: Sym) -> &str {
        SymbolsReader::get(self, id)
    }

    fn lookup(&self, s: &str) -> Option<Sym> {
        SymbolsReader::lookup(self, s)
    }
}
