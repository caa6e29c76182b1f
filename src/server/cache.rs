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
//!
//! After an ingest every cached answer is stale at once, and all the
//! clients asking the same question would run the same query together.
//! [`AnswerCache::turn`] lets one of them compute it while the others wait
//! for its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Answer bodies by query key, each with its data generation.
#[derive(Debug)]
pub struct AnswerCache {
    entries: Mutex<HashMap<String, (u64, Arc<str>)>>,
    capacity: usize,
    /// One lock per key being computed; removed by the last user.
    turns: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// The right to compute one key's answer; see [`AnswerCache::turn`].
#[derive(Debug)]
pub struct Turn {
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    turns: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        if turns
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            turns.remove(&self.key);
        }
    }
}

impl AnswerCache {
    /// A cache of at most `capacity` bodies; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
            turns: Arc::default(),
        }
    }

    /// Waits until no other request is computing `key`, and holds that
    /// right until the returned value is dropped; `None` when the cache is
    /// off. Look the key up again after this returns: the request that had
    /// the turn before may have stored the answer.
    pub async fn turn(&self, key: &str) -> Option<Turn> {
        if self.capacity == 0 {
            return None;
        }
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(turns.entry(key.to_owned()).or_default())
        };
        Some(Turn {
            key: key.to_owned(),
            guard: Some(lock.lock_owned().await),
            turns: Arc::clone(&self.turns),
        })
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
    fn turns_are_taken_one_at_a_time_and_cleaned_up() {
        let cache = AnswerCache::new(4);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let first = cache.turn("k").await.unwrap();
            let waiting = cache.turn("k");
            tokio::pin!(waiting);
            let poll = futures_poll_once(waiting.as_mut()).await;
            assert!(poll.is_none(), "a second turn waits for the first");
            drop(first);
            let second = waiting.await.unwrap();
            drop(second);
        });
        assert!(cache.turns.lock().unwrap().is_empty());
        assert!(runtime.block_on(AnswerCache::new(0).turn("k")).is_none());
    }

    /// Polls a future once: `Some` if it finished.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = Some(f);
        std::future::poll_fn(move |cx| {
            let mut inner = f.take().unwrap();
            match std::pin::Pin::new(&mut inner).poll(cx) {
                std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
                std::task::Poll::Pending => std::task::Poll::Ready(None),
            }
        })
        .await
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
