//! The scrape cache: what a loop remembers of each series line between scrapes.
//!
//! A target sends its series in the same order scrape after scrape, so the cache keeps its
//! entries, and their lines in one buffer, in that order and first compares a line with the
//! entry after the last one found: in the steady state every line is found by one comparison
//! with memory read in order, without hashing the line or probing a table at random. A line
//! out of place is found through the index; after a scrape with such lines the entries are
//! put back into the order of that scrape (for a target whose order changes at every scrape,
//! only now and then: it would gain nothing). A line repeated within a scrape is found but
//! moves nothing.

use ahash::RandomState;
use hashbrown::HashTable;
use vigil_model::SeriesRef;

/// What the cache keeps per series line. The final labels are not kept: the storage
/// reference stands for them (saving some 500 bytes per series), and on the rare miss of a
/// reference (a series the head dropped) they are rebuilt from the line.
pub(crate) struct CacheEntry {
    /// Reference in storage, once appended.
    pub series: Option<SeriesRef>,
    /// Metric relabeling dropped the series.
    pub dropped: bool,
    /// Scrape number in which the series was last seen.
    pub last_seen: u64,
    /// The target gave an explicit timestamp: Prometheus writes no staleness for such series.
    pub explicit_ts: bool,
    /// The last sample was a native histogram: its staleness marker is one too.
    pub histogram: bool,
}

struct Slot {
    /// The line's place in `ScrapeCache::keys`.
    key_at: u32,
    key_len: u32,
    /// Place of the line in the scrape that last saw it.
    place: u32,
    /// The scrape that last saw it (`ScrapeCache::generation`).
    generation: u32,
    entry: CacheEntry,
}

#[derive(Default)]
pub(crate) struct ScrapeCache {
    /// In the order of the last scrape (new lines at the end).
    slots: Vec<Slot>,
    /// The slots' lines, back to back in the slots' order.
    keys: Vec<u8>,
    /// Key → index into `slots`.
    index: HashTable<u32>,
    hasher: RandomState,
    /// The slot expected next.
    cursor: usize,
    /// Lines seen so far in this scrape.
    seen: u32,
    /// Lines of this scrape that were not where the last scrape had them.
    out_of_place: usize,
    /// Number of the current scrape.
    generation: u32,
    /// Scrapes in a row with lines out of place: a target whose order changes every time
    /// gains nothing from reordering, so it is then reordered only now and then.
    unsettled: u32,
}

impl ScrapeCache {
    /// Starts a scrape: lines are expected from the first slot on.
    pub fn begin(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.cursor = 0;
        self.seen = 0;
        self.out_of_place = 0;
    }

    /// The entry of `key`, if cached.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut CacheEntry> {
        let place = self.seen;
        self.seen = self.seen.wrapping_add(1);
        let i = match self.slots.get(self.cursor) {
            Some(s) if key_of(&self.keys, s) == key => self.cursor,
            _ => {
                let hash = self.hasher.hash_one(key);
                let (slots, keys) = (&self.slots, &self.keys);
                let i = *self
                    .index
                    .find(hash, |&i| key_of(keys, &slots[i as usize]) == key)?
                    as usize;
                if self.slots[i].generation == self.generation {
                    // A line repeated within the scrape: the caller skips it.
                    return Some(&mut self.slots[i].entry);
                }
                self.out_of_place += 1;
                i
            }
        };
        self.cursor = i + 1;
        let slot = &mut self.slots[i];
        slot.place = place;
        slot.generation = self.generation;
        Some(&mut slot.entry)
    }

    /// Adds the entry of a line not cached yet (after `get_mut` found none).
    pub fn insert(&mut self, key: &[u8], entry: CacheEntry) {
        let i = self.slots.len() as u32;
        let hash = self.hasher.hash_one(key);
        let (slots, keys, hasher) = (&self.slots, &self.keys, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            hasher.hash_one(key_of(keys, &slots[j as usize]))
        });
        let key_at = self.keys.len() as u32;
        self.keys.extend_from_slice(key);
        self.slots.push(Slot {
            key_at,
            key_len: key.len() as u32,
            place: self.seen.wrapping_sub(1),
            generation: self.generation,
            entry,
        });
        self.out_of_place += 1;
        self.cursor = self.slots.len();
    }

    pub fn values(&self) -> impl Iterator<Item = &CacheEntry> {
        self.slots.iter().map(|s| &s.entry)
    }

    /// Keeps the entries for which `keep` is true. After a scrape with lines out of place the
    /// rest are put in the order of that scrape, unless the target has been out of order for
    /// more than three scrapes in a row (then only every 64th time).
    pub fn retain(&mut self, mut keep: impl FnMut(&CacheEntry) -> bool) {
        let before = self.slots.len();
        self.slots.retain(|s| keep(&s.entry));
        self.unsettled = if self.out_of_place > 0 {
            self.unsettled.saturating_add(1)
        } else {
            0
        };
        let reorder =
            self.unsettled > 0 && (self.unsettled <= 3 || self.unsettled.is_multiple_of(64));
        if reorder {
            self.slots.sort_by_key(|s| s.place);
        }
        self.out_of_place = 0;
        if reorder || self.slots.len() != before {
            self.reindex();
        }
    }

    /// Rebuilds the line buffer in the slots' order and the index.
    fn reindex(&mut self) {
        let mut keys = Vec::with_capacity(self.slots.iter().map(|s| s.key_len as usize).sum());
        for s in &mut self.slots {
            let at = keys.len() as u32;
            keys.extend_from_slice(key_of(&self.keys, s));
            s.key_at = at;
        }
        self.keys = keys;
        self.index.clear();
        let (slots, keys, hasher) = (&self.slots, &self.keys, &self.hasher);
        for (i, s) in slots.iter().enumerate() {
            let hash = hasher.hash_one(key_of(keys, s));
            self.index.insert_unique(hash, i as u32, |&j| {
                hasher.hash_one(key_of(keys, &slots[j as usize]))
            });
        }
    }

    #[cfg(test)]
    fn lines(&self) -> Vec<&[u8]> {
        self.slots.iter().map(|s| key_of(&self.keys, s)).collect()
    }
}

fn key_of<'k>(keys: &'k [u8], s: &Slot) -> &'k [u8] {
    &keys[s.key_at as usize..(s.key_at + s.key_len) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(series: u64, it: u64) -> CacheEntry {
        CacheEntry {
            series: Some(series),
            dropped: false,
            last_seen: it,
            explicit_ts: false,
            histogram: false,
        }
    }

    /// One scrape of `lines`: each found or inserted; returns the references found.
    fn scrape(c: &mut ScrapeCache, it: u64, lines: &[&str]) -> Vec<Option<u64>> {
        c.begin();
        let mut found = Vec::new();
        for (n, l) in lines.iter().enumerate() {
            match c.get_mut(l.as_bytes()) {
                Some(e) => {
                    e.last_seen = it;
                    found.push(e.series);
                }
                None => {
                    c.insert(l.as_bytes(), entry(100 * it + n as u64, it));
                    found.push(None);
                }
            }
        }
        c.retain(|e| e.last_seen == it);
        found
    }

    #[test]
    fn steady_scrapes_find_every_line_in_order() {
        let mut c = ScrapeCache::default();
        assert_eq!(scrape(&mut c, 1, &["a", "b", "c"]), [None, None, None]);
        for it in 2..5 {
            assert_eq!(
                scrape(&mut c, it, &["a", "b", "c"]),
                [Some(100), Some(101), Some(102)]
            );
            assert_eq!(c.out_of_place, 0);
        }
    }

    #[test]
    fn changed_order_new_and_gone_lines_keep_every_entry_right() {
        let mut c = ScrapeCache::default();
        scrape(&mut c, 1, &["a", "b", "c", "d"]);
        // b gone, e new in the middle, d before c.
        assert_eq!(
            scrape(&mut c, 2, &["a", "e", "d", "c"]),
            [Some(100), None, Some(103), Some(102)]
        );
        assert_eq!(c.lines(), [&b"a"[..], b"e", b"d", b"c"]);
        assert_eq!(c.keys, b"aedc", "the line buffer is compacted in order");
        assert_eq!(
            scrape(&mut c, 3, &["a", "e", "d", "c"]),
            [Some(100), Some(201), Some(103), Some(102)]
        );
        assert_eq!(c.out_of_place, 0);
        // Every line found through the index as well.
        for k in ["a", "e", "d", "c"] {
            c.cursor = usize::MAX;
            assert!(c.get_mut(k.as_bytes()).is_some(), "{k}");
        }
        assert!(c.get_mut(b"b").is_none());
    }

    #[test]
    fn a_target_that_repeats_a_line_settles() {
        let mut c = ScrapeCache::default();
        scrape(&mut c, 1, &["a", "b", "a", "c"]);
        scrape(&mut c, 2, &["a", "b", "a", "c"]);
        c.begin();
        for k in ["a", "b", "a", "c"] {
            assert!(c.get_mut(k.as_bytes()).is_some());
        }
        assert_eq!(c.out_of_place, 0, "the repeat is not a line out of place");
    }

    #[test]
    fn a_target_whose_order_keeps_changing_is_reordered_only_now_and_then() {
        let mut c = ScrapeCache::default();
        let orders = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"]];
        for it in 1..=10 {
            let found = scrape(&mut c, it, &orders[it as usize % 3]);
            if it > 1 {
                assert!(found.iter().all(|f| f.is_some()), "scrape {it}: {found:?}");
            }
        }
        // Entries stay found through the index whatever the order, reordered or not.
        assert_eq!(c.lines().len(), 3);
        // Past three unsettled scrapes in a row, the slots keep their order.
        c.unsettled = 10;
        let before: Vec<Vec<u8>> = c.lines().iter().map(|l| l.to_vec()).collect();
        let mut order = before.clone();
        order.reverse();
        let order: Vec<&str> = order
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        assert!(scrape(&mut c, 11, &order).iter().all(|f| f.is_some()));
        let after: Vec<Vec<u8>> = c.lines().iter().map(|l| l.to_vec()).collect();
        assert_eq!(after, before);
    }

    #[test]
    fn a_repeated_line_finds_the_same_entry() {
        let mut c = ScrapeCache::default();
        scrape(&mut c, 1, &["a", "b"]);
        c.begin();
        assert_eq!(c.get_mut(b"a").map(|e| e.series), Some(Some(100)));
        assert_eq!(c.get_mut(b"a").map(|e| e.series), Some(Some(100)));
        assert_eq!(c.get_mut(b"b").map(|e| e.series), Some(Some(101)));
    }
}
