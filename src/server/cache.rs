//! A small cache of answer bodies, valid for one data generation.
//!
//! Dashboards send the same few queries again and again, and the engine's
//! data changes only when an ingest call adds rows, which bumps
//! [`Engine::generation`](crate::Engine::generation). An answer body is
//! stored with the generation read *before* its query ran and served only
//! while the engine is still at that generation, so a cached answer is
//! never older than what an uncached query would have seen. The cache
//! holds at most `capacity` bodies; when full, stale entries go first, and
//! if none is stale, everything goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Answer bodies by query key, each with its data generation.
#[derive(Debug)]
pub struct AnswerCache {
    entries: Mutex<HashMap<String, (u64, Arc<str>)>>,
    capacity: usize,
}

impl AnswerCache {
    /// A cache of at most `capacity` bodies; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The body stored for `key` at `generation`, if any.
    pub fn get(&self, key: &str, generation: u64) -> Option<Arc<str>> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((g, body)) if *g == generation => Some(Arc::clone(body)),
            _ => None,
        }
    }

    /// Stores `body` for `key`, computed from data at `generation`;
    /// `current` is the engine's generation now.
    pub fn put(&self, key: String, generation: u64, current: u64, body: Arc<str>) {
        if self.capacity == 0 || generation != current {
            return; // already stale
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (g, _)| *g == current);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (generation, body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_the_generation_it_was_computed_at() {
        let cache = AnswerCache::new(2);
        cache.put("a".into(), 1, 1, "A1".into());
        assert_eq!(cache.get("a", 1).as_deref(), Some("A1"));
        assert_eq!(cache.get("a", 2), None);
        cache.put("b".into(), 1, 2, "B1".into()); // stale on arrival
        assert_eq!(cache.get("b", 1), None);
    }

    #[test]
    fn stays_within_its_capacity() {
        let cache = AnswerCache::new(2);
        cache.put("a".into(), 1, 1, "A".into());
        cache.put("b".into(), 1, 1, "B".into());
        cache.put("c".into(), 1, 1, "C".into());
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
        assert_eq!(cache.get("c", 1).as_deref(), Some("C"));
        cache.put("d".into(), 2, 2, "D".into());
        cache.put("e".into(), 2, 2, "E".into()); // "c" is stale: dropped first
        assert_eq!(cache.get("d", 2).as_deref(), Some("D"));
        assert_eq!(cache.get("e", 2).as_deref(), Some("E"));
        let off = AnswerCache::new(0);
        off.put("a".into(), 1, 1, "A".into());
        assert_eq!(off.get("a", 1), None);
    }
}
