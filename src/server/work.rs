//! CPU work off the async workers, with a bound on how much may wait.
//!
//! Queries, ingest and argon2 are CPU work: run on tokio's async workers
//! they would stall accepting connections and `/healthz`. [`WorkPool::run`]
//! moves a closure to the blocking pool. At most `running` closures run at
//! once (about the number of cores: more only adds context switches), and
//! at most `admitted` requests may hold or wait for a slot; the next one is
//! answered 429 at once instead of queueing without limit.

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::status::ApiError;

/// Admission and execution limits of CPU work.
#[derive(Debug, Clone)]
pub struct WorkPool {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    max_admitted: usize,
}

impl WorkPool {
    /// A pool running `running` closures at once, with at most `admitted`
    /// requests running or waiting (`running` is capped at `admitted`).
    pub fn new(running: usize, admitted: usize) -> Self {
        let admitted = admitted.max(1);
        let running = running.clamp(1, admitted);
        Self {
            admitted: Arc::new(Semaphore::new(admitted)),
            running: Arc::new(Semaphore::new(running)),
            max_admitted: admitted,
        }
    }

    /// Runs `work` on the blocking pool once a slot is free; 429 when too
    /// many requests are already admitted. A panic in `work` is resumed
    /// here, for the panic-catching layer to answer 500.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded(self.max_admitted))?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("unavailable: shutting down"))?;
        // The permits move into the closure: a request that times out
        // still holds its slot until its work really ends.
        let task = tokio::task::spawn_blocking(move || {
            let result = work();
            drop((running, admitted));
            result
        });
        match task.await {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ApiError::unavailable("unavailable: shutting down")),
        }
    }
}
