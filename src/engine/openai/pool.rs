//! The endpoints that serve one remote model, and which of them takes the next request:
//! the least loaded healthy one with a free slot (each endpoint has its own concurrency
//! limit). An endpoint that fails (connection refused, 429, 5xx) cools down before it gets
//! another request, for its `Retry-After` or an exponential backoff with jitter, so a
//! dead or overloaded server drains to the others instead of eating every retry.
//!
//! Everything runs on the engine's single-threaded runtime, hence `Cell`s, not atomics.

use std::cell::Cell;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// First cooldown after a failure; it doubles with each consecutive failed episode.
const BASE_COOLDOWN: Duration = Duration::from_millis(250);
const MAX_COOLDOWN: Duration = Duration::from_secs(30);

pub struct Endpoint {
    pub url: String,
    pub api_key: Option<String>,
    limit: usize,
    in_flight: Cell<usize>,
    /// Requests ever given to it, so equally loaded endpoints take turns.
    assigned: Cell<u64>,
    consecutive_failures: Cell<u32>,
    cooling_until: Cell<Option<Instant>>,
}

impl Endpoint {
    pub fn new(url: String, api_key: Option<String>, limit: usize) -> Endpoint {
        Endpoint {
            url,
            api_key,
            limit: limit.max(1),
            in_flight: Cell::new(0),
            assigned: Cell::new(0),
            consecutive_failures: Cell::new(0),
            cooling_until: Cell::new(None),
        }
    }

    fn cooling(&self, now: Instant) -> bool {
        self.cooling_until.get().is_some_and(|until| until > now)
    }

    fn has_slot(&self) -> bool {
        self.in_flight.get() < self.limit
    }
}

pub struct Pool {
    endpoints: Vec<Endpoint>,
    released: Notify,
}

/// A request's claim on one endpoint; dropping it frees the slot.
pub struct Slot<'a> {
    pool: &'a Pool,
    pub index: usize,
}

impl Slot<'_> {
    pub fn endpoint(&self) -> &Endpoint {
        &self.pool.endpoints[self.index]
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let endpoint = &self.pool.endpoints[self.index];
        endpoint
            .in_flight
            .set(endpoint.in_flight.get().saturating_sub(1));
        self.pool.released.notify_waiters();
    }
}

impl Pool {
    pub fn new(endpoints: Vec<Endpoint>) -> Pool {
        Pool {
            endpoints,
            released: Notify::new(),
        }
    }

    /// Requests that can be in flight at once over all endpoints.
    pub fn capacity(&self) -> usize {
        self.endpoints.iter().map(|e| e.limit).sum()
    }

    #[cfg(test)]
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint to use now, preferring one other than `avoid` (where the previous
    /// attempt failed), or None when every endpoint with a free slot is cooling down.
    fn pick(&self, avoid: Option<usize>, now: Instant) -> Option<usize> {
        self.endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| e.has_slot() && !e.cooling(now))
            .min_by(|(i, a), (j, b)| {
                let load = |e: &Endpoint| e.in_flight.get() as f64 / e.limit as f64;
                (Some(*i) == avoid)
                    .cmp(&(Some(*j) == avoid))
                    .then(load(a).total_cmp(&load(b)))
                    .then(a.assigned.get().cmp(&b.assigned.get()))
            })
            .map(|(i, _)| i)
    }

    /// Waits for a free slot on a healthy endpoint and claims it.
    pub async fn acquire(&self, avoid: Option<usize>) -> Slot<'_> {
        loop {
            // Registered before looking, so a slot freed in between still wakes us.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let now = Instant::now();
            if let Some(index) = self.pick(avoid, now) {
                let endpoint = &self.endpoints[index];
                endpoint.in_flight.set(endpoint.in_flight.get() + 1);
                endpoint.assigned.set(endpoint.assigned.get() + 1);
                return Slot { pool: self, index };
            }
            let cooled = self
                .endpoints
                .iter()
                .filter(|e| e.has_slot())
                .filter_map(|e| e.cooling_until.get())
                .min();
            match cooled {
                Some(until) => {
                    tokio::select! {
                        _ = released => {}
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
                None => released.await,
            }
        }
    }

    /// The endpoint answered; it is healthy again.
    pub fn succeeded(&self, index: usize) {
        let endpoint = &self.endpoints[index];
        endpoint.consecutive_failures.set(0);
        endpoint.cooling_until.set(None);
    }

    /// The endpoint failed: it rests for `retry_after` if the server said so, else for a
    /// backoff that doubles with each failure episode (failures of requests that were
    /// already in flight when it started cooling count once).
    pub fn failed(&self, index: usize, retry_after: Option<Duration>) {
        let endpoint = &self.endpoints[index];
        let now = Instant::now();
        if endpoint.cooling(now) && retry_after.is_none() {
            return;
        }
        let failures = endpoint.consecutive_failures.get().saturating_add(1);
        endpoint.consecutive_failures.set(failures);
        let backoff = BASE_COOLDOWN
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_COOLDOWN)
            .mul_f64(rand::random_range(0.5..1.0));
        let rest = retry_after.map_or(backoff, |d| d.min(Duration::from_secs(120)));
        endpoint.cooling_until.set(Some(now + rest));
        self.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(limits: &[usize]) -> Pool {
        Pool::new(
            limits
                .iter()
                .enumerate()
                .map(|(i, &l)| Endpoint::new(format!("http://e{i}"), None, l))
                .collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn requests_spread_over_endpoints_by_load() {
        let pool = pool(&[2, 1]);
        assert_eq!(pool.capacity(), 3);
        let a = pool.acquire(None).await;
        let b = pool.acquire(None).await;
        let c = pool.acquire(None).await;
        let mut taken = [a.index, b.index, c.index];
        taken.sort();
        assert_eq!(taken, [0, 0, 1]);
        // Full: the next request waits until a slot is freed.
        let waiting = pool.acquire(None);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), &mut waiting)
                .await
                .is_err()
        );
        let freed = c.index;
        drop(c);
        assert_eq!(waiting.await.index, freed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_endpoint_cools_down_and_retries_go_elsewhere() {
        let pool = pool(&[4, 4]);
        let first = pool.acquire(None).await;
        let failed = first.index;
        drop(first);
        pool.failed(failed, None);
        // While it cools, every request goes to the other endpoint.
        for _ in 0..3 {
            let slot = pool.acquire(Some(failed)).await;
            assert_ne!(slot.index, failed);
        }
        pool.failed(1 - failed, Some(Duration::from_secs(10)));
        // Both cooling: the next request waits for the first cooldown to end.
        let start = Instant::now();
        let slot = pool.acquire(None).await;
        assert_eq!(slot.index, failed);
        assert!(start.elapsed() <= BASE_COOLDOWN);
        pool.succeeded(slot.index);
        assert_eq!(pool.endpoints()[failed].consecutive_failures.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn simultaneous_failures_count_as_one_episode() {
        let pool = pool(&[8]);
        for _ in 0..8 {
            pool.failed(0, None);
        }
        assert_eq!(pool.endpoints()[0].consecutive_failures.get(), 1);
        tokio::time::advance(MAX_COOLDOWN).await;
        pool.failed(0, None);
        assert_eq!(pool.endpoints()[0].consecutive_failures.get(), 2);
    }
}
