//! Time as a dependency: the rate limiter, the backoff and the token cache read the time and
//! sleep through [`Clock`], so that tests can drive them with [`FakeClock`] instead of waiting.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A boxed future returned by [`Clock::sleep`].
pub type SleepFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A monotonic clock that can also sleep.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Waits for `duration` (a fake clock just moves its time forward).
    fn sleep(&self, duration: Duration) -> SleepFuture<'_>;
}

/// The real clock: [`Instant::now`] and `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock for tests: time only moves when [`FakeClock::advance`] or [`Clock::sleep`] is called,
/// and every sleep is recorded so a test can check how long the code chose to wait.
#[derive(Debug)]
pub struct FakeClock {
    origin: Instant,
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeClock {
    /// A fake clock starting now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            state: Mutex::new(FakeState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves time forward without recording a sleep.
    pub fn advance(&self, duration: Duration) {
        self.state().elapsed += duration;
    }

    /// Time elapsed since the clock was created.
    pub fn elapsed(&self) -> Duration {
        self.state().elapsed
    }

    /// Every duration passed to [`Clock::sleep`] so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state().sleeps.clone()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.origin + self.state().elapsed
    }

    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        {
            let mut state = self.state();
            state.elapsed += duration;
            state.sleeps.push(duration);
        }
        Box::pin(tokio::task::yield_now())
    }
}
