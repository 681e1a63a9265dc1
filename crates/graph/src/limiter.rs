//! Client-side pacing to Graph's documented identity-and-access quotas (entra.md §2.5).
//!
//! Graph counts *resource units* (RU) per app and tenant over 10 s windows (3,500 / 5,000 /
//! 8,000 RU by tenant size), writes over 150 s (3,000), and requests that list authentication
//! methods over 10 s (5 per app per tenant). [`RateLimiter`] keeps a sliding log of what was
//! sent in each window and makes a caller wait until its request fits under a target fraction of
//! the ceiling, so that bulk work runs just below the limit instead of bouncing off 429s.
//! A sliding window also satisfies any fixed-window accounting the service may use.
//!
//! When Graph reports `x-ms-throttle-limit-percentage` (sent past 80 % of a limit) the limiter
//! lowers its own ceiling in proportion, and recovers slowly once the header stops coming; after
//! a 429 it holds every caller until the `Retry-After` has passed.
//!
//! FIDO2 calls and the reports budget ([`Fido2Pacing`]): Graph ties the reports budget to
//! requests that *list* authentication methods and does not say whether the other FIDO2 calls
//! (`creationOptions`, registering or deleting a passkey) count against it. Paced as if they
//! did, provisioning could not pass 0.25 users/s. So lists are always paced to it; the other
//! FIDO2 calls go at the write quota's pace until Graph answers one of them 429, and then, for
//! [`FIDO2_HOLD_FIRST`] (doubling at each further 429, up to [`FIDO2_HOLD_MAX`]), they are paced
//! to the reports budget too: a tenant where the budget does apply costs one burst of 429s per
//! hold and is otherwise never hammered.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// The size class that decides a tenant's resource-unit budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSize {
    /// Fewer than 50 users: 3,500 RU per 10 s.
    Small,
    /// 50 to 500 users: 5,000 RU per 10 s.
    Medium,
    /// More than 500 users: 8,000 RU per 10 s.
    Large,
}

impl TenantSize {
    /// The size class of a tenant with `users` users.
    pub fn from_user_count(users: u64) -> Self {
        match users {
            0..50 => Self::Small,
            50..=500 => Self::Medium,
            _ => Self::Large,
        }
    }

    /// Graph's documented resource units per 10 s for this size.
    pub fn resource_units_per_10s(self) -> u32 {
        match self {
            Self::Small => 3_500,
            Self::Medium => 5_000,
            Self::Large => 8_000,
        }
    }
}

/// The quotas the limiter paces to. `None` disables a budget.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// Resource units per 10 s (identity and access, app + tenant).
    pub resource_units_per_10s: Option<u32>,
    /// Writes per 150 s (identity and access, app + tenant).
    pub writes_per_150s: Option<u32>,
    /// Authentication-method requests per 10 s (the "reports" budget): always applied to
    /// requests listing a user's methods, and to the other FIDO2 calls as [`Fido2Pacing`] says.
    pub authentication_requests_per_10s: Option<u32>,
    /// Fraction of each ceiling to aim for (0 < f ≤ 1), leaving room for clock skew between us
    /// and Graph and for other clients of the same app.
    pub target_fraction: f64,
}

impl RateLimits {
    /// Graph's documented quotas for a tenant of the given size, aiming at 95 % of each.
    pub fn documented(size: TenantSize) -> Self {
        Self {
            resource_units_per_10s: Some(size.resource_units_per_10s()),
            writes_per_150s: Some(3_000),
            authentication_requests_per_10s: Some(5),
            target_fraction: 0.95,
        }
    }

    /// No client-side pacing at all (429s are still honoured).
    pub fn unlimited() -> Self {
        Self {
            resource_units_per_10s: None,
            writes_per_150s: None,
            authentication_requests_per_10s: None,
            target_fraction: 1.0,
        }
    }
}

impl Default for RateLimits {
    /// The smallest tenant's budget: safe until the caller knows the tenant's size.
    fn default() -> Self {
        Self::documented(TenantSize::Small)
    }
}

/// When FIDO2 calls other than lists (`creationOptions`, `POST` and `DELETE` of a passkey, one
/// passkey's `GET`) are paced to the reports budget (see the module doc).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fido2Pacing {
    /// Only after Graph answered one of them 429, for a while.
    #[default]
    Auto,
    /// Always, as for lists: for a tenant known to apply the budget to every FIDO2 call.
    ReportsBudget,
}

/// How long FIDO2 calls stay paced to the reports budget after the first 429 on one of them:
/// long enough that a tenant applying the budget sees at most one burst per 10 minutes.
pub const FIDO2_HOLD_FIRST: Duration = Duration::from_secs(10 * 60);
/// The longest hold: each further 429 doubles it up to here, so that a tenant that keeps
/// applying the budget is probed a few times a day and no more.
pub const FIDO2_HOLD_MAX: Duration = Duration::from_secs(4 * 3600);

/// What one request costs against each budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCost {
    /// Resource units.
    pub resource_units: u32,
    /// Writes (1 for every POST, PATCH, PUT and DELETE).
    pub writes: u32,
    /// Requests listing authentication methods (always on the reports budget).
    pub authentication_requests: u32,
    /// Other FIDO2 and authentication-method calls (on the reports budget only while
    /// [`Fido2Pacing`] says so).
    pub fido2_requests: u32,
}

impl RequestCost {
    /// Adds another request's cost (used for the items of a `$batch`).
    pub fn plus(self, other: RequestCost) -> RequestCost {
        RequestCost {
            resource_units: self.resource_units + other.resource_units,
            writes: self.writes + other.writes,
            authentication_requests: self.authentication_requests + other.authentication_requests,
            fido2_requests: self.fido2_requests + other.fido2_requests,
        }
    }

    /// The documented cost of a request, from its method and its path and query relative to the
    /// Graph root (with or without the `/v1.0` or `/beta` prefix): `GET users` 2,
    /// `GET groups/{id}/members` 3, `POST directoryObjects/getByIds` 5, any other GET 1, writes
    /// 1 RU + 1 write; `$select` −1, `$expand` +1, `$top` below 20 −1; at least 1 RU. Under
    /// `…/authentication/`, a `GET` of the `methods` or `fido2Methods` collection is a list
    /// (reports budget); every other call there is a FIDO2 call.
    pub fn of(method: &str, path_and_query: &str) -> RequestCost {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let path = path.trim_end_matches('/');
        let path = path
            .strip_prefix("/v1.0")
            .or_else(|| path.strip_prefix("/beta"))
            .unwrap_or(path);
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let is_get = method.eq_ignore_ascii_case("GET");
        let mut units: i64 = match (is_get, segments.as_slice()) {
            (true, ["users"]) | (true, ["users", "delta"]) => 2,
            (true, ["groups", _, "members", ..]) => 3,
            (false, ["directoryObjects", "getByIds"]) => 5,
            _ => 1,
        };
        let query = percent_decode_lossy(query);
        let has = |name: &str| {
            query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                key.eq_ignore_ascii_case(name).then(|| value.to_owned())
            })
        };
        if has("$select").is_some() {
            units -= 1;
        }
        if has("$expand").is_some() {
            units += 1;
        }
        if has("$top")
            .and_then(|t| t.parse::<u32>().ok())
            .is_some_and(|top| top < 20)
        {
            units -= 1;
        }
        let authentication = segments.iter().position(|s| *s == "authentication");
        let list = is_get
            && authentication
                .is_some_and(|at| matches!(&segments[at + 1..], ["methods"] | ["fido2Methods"]));
        RequestCost {
            resource_units: u32::try_from(units.max(1)).unwrap_or(1),
            writes: u32::from(!is_get),
            authentication_requests: u32::from(list),
            fido2_requests: u32::from(authentication.is_some() && !list),
        }
    }
}

fn percent_decode_lossy(query: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// One sliding window: what was admitted in the last `period`.
#[derive(Debug)]
struct Window {
    period: Duration,
    limit: Option<u32>,
    log: VecDeque<(Instant, u32)>,
    used: u64,
}

impl Window {
    fn new(period: Duration, limit: Option<u32>) -> Self {
        Self {
            period,
            limit,
            log: VecDeque::new(),
            used: 0,
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, cost)) = self.log.front() {
            if now.saturating_duration_since(at) >= self.period {
                self.used -= u64::from(cost);
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    /// How long until `cost` fits under `limit * scale`; zero when it fits now.
    fn wait_for(&mut self, now: Instant, cost: u32, scale: f64) -> Duration {
        let Some(limit) = self.limit else {
            return Duration::ZERO;
        };
        if cost == 0 {
            return Duration::ZERO;
        }
        self.prune(now);
        let ceiling = (f64::from(limit) * scale).floor().max(1.0);
        // An oversized request is admitted into an empty window rather than never.
        if self.log.is_empty() || (self.used + u64::from(cost)) as f64 <= ceiling {
            return Duration::ZERO;
        }
        let must_free = (self.used + u64::from(cost)) as f64 - ceiling;
        let mut freed = 0.0;
        for &(at, entry_cost) in &self.log {
            freed += f64::from(entry_cost);
            if freed >= must_free {
                return (at + self.period).saturating_duration_since(now);
            }
        }
        self.log
            .back()
            .map(|&(at, _)| (at + self.period).saturating_duration_since(now))
            .unwrap_or(Duration::ZERO)
    }

    fn record(&mut self, now: Instant, cost: u32) {
        if self.limit.is_some() && cost > 0 {
            self.log.push_back((now, cost));
            self.used += u64::from(cost);
        }
    }
}

#[derive(Debug)]
struct LimiterState {
    resource_units: Window,
    writes: Window,
    authentication: Window,
    target_fraction: f64,
    /// Extra slow-down from `x-ms-throttle-limit-percentage`, 0.25..=1.
    pressure: f64,
    last_recovery: Instant,
    paused_until: Option<Instant>,
    fido2_pacing: Fido2Pacing,
    /// Until when FIDO2 calls are on the reports budget after a 429 (auto pacing).
    fido2_paced_until: Option<Instant>,
    /// The hold the next such 429 starts.
    fido2_next_hold: Duration,
}

/// Paces requests to [`RateLimits`]; cheap to clone, shared by every caller of one client.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    clock: Arc<dyn Clock>,
    state: Arc<Mutex<LimiterState>>,
}

/// The lowest the throttle-percentage feedback may push the ceiling.
const MIN_PRESSURE: f64 = 0.25;
/// How much of the ceiling comes back per 10 s without a high throttle percentage.
const RECOVERY_PER_WINDOW: f64 = 0.05;

impl RateLimiter {
    /// A limiter pacing to `limits`, reading time from `clock`.
    pub fn new(limits: RateLimits, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let state = LimiterState {
            resource_units: Window::new(Duration::from_secs(10), limits.resource_units_per_10s),
            writes: Window::new(Duration::from_secs(150), limits.writes_per_150s),
            authentication: Window::new(
                Duration::from_secs(10),
                limits.authentication_requests_per_10s,
            ),
            target_fraction: limits.target_fraction.clamp(0.01, 1.0),
            pressure: 1.0,
            last_recovery: now,
            paused_until: None,
            fido2_pacing: Fido2Pacing::Auto,
            fido2_paced_until: None,
            fido2_next_hold: FIDO2_HOLD_FIRST,
        };
        Self {
            clock,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LimiterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the budgets (e.g. once the tenant's size is known), keeping what was already sent.
    pub fn set_limits(&self, limits: RateLimits) {
        let mut state = self.lock();
        state.resource_units.limit = limits.resource_units_per_10s;
        state.writes.limit = limits.writes_per_150s;
        state.authentication.limit = limits.authentication_requests_per_10s;
        state.target_fraction = limits.target_fraction.clamp(0.01, 1.0);
    }

    /// How long the next request of `cost` would have to wait now (zero = it may go). When it
    /// may go, it is recorded as sent.
    pub fn try_acquire(&self, cost: RequestCost) -> Duration {
        let now = self.clock.now();
        let mut state = self.lock();
        state.recover(now);
        if let Some(until) = state.paused_until {
            if until > now {
                return until - now;
            }
            state.paused_until = None;
        }
        let scale = state.target_fraction * state.pressure;
        let reports = cost.authentication_requests
            + if state.fido2_on_reports_budget(now) {
                cost.fido2_requests
            } else {
                0
            };
        let wait = state
            .resource_units
            .wait_for(now, cost.resource_units, scale)
            .max(state.writes.wait_for(now, cost.writes, scale))
            .max(state.authentication.wait_for(now, reports, scale));
        if wait.is_zero() {
            state.resource_units.record(now, cost.resource_units);
            state.writes.record(now, cost.writes);
            state.authentication.record(now, reports);
        }
        wait
    }

    /// Waits until a request of `cost` fits, then records it. Returns the total time waited.
    pub async fn acquire(&self, cost: RequestCost) -> Duration {
        let mut waited = Duration::ZERO;
        loop {
            let wait = self.try_acquire(cost);
            if wait.is_zero() {
                return waited;
            }
            waited += wait;
            self.clock.sleep(wait).await;
        }
    }

    /// Feeds back Graph's `x-ms-throttle-limit-percentage` (e.g. `0.9` = 90 % of a limit used).
    /// Up to the target fraction that is this limiter's own doing; above it someone else
    /// (another instance, another tool using the same app) spends the budget too, and the
    /// ceiling shrinks in proportion.
    pub fn observe_throttle_percentage(&self, fraction_used: f64) {
        let now = self.clock.now();
        let mut state = self.lock();
        if !fraction_used.is_finite() || fraction_used <= state.target_fraction {
            return;
        }
        let factor = (state.target_fraction / fraction_used).clamp(0.5, 1.0);
        state.pressure = (state.pressure * factor).max(MIN_PRESSURE);
        state.last_recovery = now;
    }

    /// Holds every caller until `until` (after a 429 with `Retry-After`).
    pub fn pause_until(&self, until: Instant) {
        let mut state = self.lock();
        if state.paused_until.is_none_or(|current| current < until) {
            state.paused_until = Some(until);
        }
        // A 429 means the budget is spent: slow down like a high throttle percentage would.
        state.pressure = (state.pressure * 0.9).max(MIN_PRESSURE);
        state.last_recovery = self.clock.now();
    }

    /// Sets when FIDO2 calls are paced to the reports budget.
    pub fn set_fido2_pacing(&self, pacing: Fido2Pacing) {
        self.lock().fido2_pacing = pacing;
    }

    /// Graph answered a FIDO2 call (not a list) 429 for a reason other than the write quota:
    /// the reports budget may apply to FIDO2 calls in this tenant, so they are paced to it for
    /// the next hold (see the module doc). Returns how long.
    pub fn observe_fido2_throttled(&self) -> Duration {
        let now = self.clock.now();
        let mut state = self.lock();
        if state.fido2_paced_until.is_some_and(|until| until > now) {
            // Already paced: a 429 from calls admitted before the switch.
            return state
                .fido2_paced_until
                .map_or(Duration::ZERO, |until| until - now);
        }
        // A tenant quiet for the longest hold since the last one starts again from the first.
        if state
            .fido2_paced_until
            .is_some_and(|until| now.saturating_duration_since(until) >= FIDO2_HOLD_MAX)
        {
            state.fido2_next_hold = FIDO2_HOLD_FIRST;
        }
        let hold = state.fido2_next_hold;
        state.fido2_paced_until = Some(now + hold);
        state.fido2_next_hold = (hold * 2).min(FIDO2_HOLD_MAX);
        hold
    }

    /// Whether FIDO2 calls are paced to the reports budget now.
    pub fn fido2_on_reports_budget(&self) -> bool {
        let now = self.clock.now();
        self.lock().fido2_on_reports_budget(now)
    }

    /// The current slow-down factor from Graph's feedback (1 = none).
    pub fn pressure(&self) -> f64 {
        let now = self.clock.now();
        let mut state = self.lock();
        state.recover(now);
        state.pressure
    }
}

impl LimiterState {
    fn fido2_on_reports_budget(&self, now: Instant) -> bool {
        self.fido2_pacing == Fido2Pacing::ReportsBudget
            || self.fido2_paced_until.is_some_and(|until| until > now)
    }

    fn recover(&mut self, now: Instant) {
        if self.pressure >= 1.0 {
            self.last_recovery = now;
            return;
        }
        let elapsed = now.saturating_duration_since(self.last_recovery);
        let windows = elapsed.as_secs_f64() / 10.0;
        if windows > 0.0 {
            self.pressure = (self.pressure + RECOVERY_PER_WINDOW * windows).min(1.0);
            self.last_recovery = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    fn limiter(limits: RateLimits) -> (Arc<FakeClock>, RateLimiter) {
        let clock = Arc::new(FakeClock::new());
        let limiter = RateLimiter::new(limits, clock.clone());
        (clock, limiter)
    }

    #[test]
    fn documented_costs() {
        let cost = |m, p| RequestCost::of(m, p).resource_units;
        assert_eq!(cost("GET", "/v1.0/users"), 2);
        assert_eq!(
            cost("GET", "/v1.0/users?$select=id,displayName&$top=999"),
            1
        );
        assert_eq!(
            cost("GET", "/v1.0/users?%24select=id&%24top=5"),
            1,
            "minimum is 1"
        );
        assert_eq!(cost("GET", "/v1.0/groups/g1/members?$top=999"), 3);
        assert_eq!(cost("GET", "/v1.0/groups/g1/members?$select=id"), 2);
        assert_eq!(cost("GET", "/v1.0/users/u1?$expand=memberOf"), 2);
        assert_eq!(cost("POST", "/v1.0/directoryObjects/getByIds"), 5);
        assert_eq!(cost("GET", "/beta/users/u1"), 1);
        let write = RequestCost::of("PATCH", "/v1.0/groups/g1");
        assert_eq!(
            write,
            RequestCost {
                resource_units: 1,
                writes: 1,
                authentication_requests: 0,
                fido2_requests: 0,
            }
        );
        let fido = RequestCost::of("GET", "/v1.0/users/u1/authentication/fido2Methods");
        assert_eq!(fido.authentication_requests, 1);
        assert_eq!(fido.fido2_requests, 0);
        assert_eq!(fido.writes, 0);
    }

    #[test]
    fn lists_of_methods_are_reports_and_other_fido2_calls_are_not() {
        let list = |m, p| {
            let c = RequestCost::of(m, p);
            (c.authentication_requests, c.fido2_requests)
        };
        assert_eq!(list("GET", "/v1.0/users/u1/authentication/methods"), (1, 0));
        assert_eq!(
            list("GET", "/v1.0/users/u1/authentication/fido2Methods?$top=50"),
            (1, 0)
        );
        assert_eq!(
            list(
                "GET",
                "/v1.0/users/u1/authentication/fido2Methods/creationOptions"
            ),
            (0, 1)
        );
        assert_eq!(
            list(
                "GET",
                "/beta/users/u1/authentication/fido2Methods/creationOptions(challengeTimeoutInMinutes=10)"
            ),
            (0, 1)
        );
        assert_eq!(
            list("POST", "/v1.0/users/u1/authentication/fido2Methods"),
            (0, 1)
        );
        assert_eq!(
            list("DELETE", "/v1.0/users/u1/authentication/fido2Methods/m1"),
            (0, 1)
        );
        assert_eq!(
            list("GET", "/v1.0/users/u1/authentication/fido2Methods/m1"),
            (0, 1)
        );
        assert_eq!(list("GET", "/v1.0/users/u1"), (0, 0));
    }

    #[test]
    fn fido2_calls_go_unpaced_until_a_429_then_hold_to_the_reports_budget() {
        let (clock, limiter) = limiter(RateLimits::documented(TenantSize::Large));
        let post = RequestCost::of("POST", "/v1.0/users/u/authentication/fido2Methods");
        // Auto: 50 registrations at once, no wait (the write quota is far away).
        for _ in 0..50 {
            assert!(limiter.try_acquire(post).is_zero());
        }
        assert!(!limiter.fido2_on_reports_budget());
        // A 429 on one of them: the next hold paces them like lists, 4 per 10 s.
        assert_eq!(limiter.observe_fido2_throttled(), FIDO2_HOLD_FIRST);
        assert!(limiter.fido2_on_reports_budget());
        let admitted = (0..10)
            .take_while(|_| limiter.try_acquire(post).is_zero())
            .count();
        assert_eq!(admitted, 4);
        // A late 429 from calls sent before the switch does not lengthen the hold.
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            limiter.observe_fido2_throttled(),
            FIDO2_HOLD_FIRST - Duration::from_secs(60)
        );
        // After the hold, unpaced again; the next 429 holds twice as long, up to the maximum.
        clock.advance(FIDO2_HOLD_FIRST);
        assert!(!limiter.fido2_on_reports_budget());
        for _ in 0..20 {
            assert!(limiter.try_acquire(post).is_zero());
        }
        let mut hold = limiter.observe_fido2_throttled();
        assert_eq!(hold, FIDO2_HOLD_FIRST * 2);
        let mut holds = Vec::new();
        for _ in 0..5 {
            clock.advance(hold);
            hold = limiter.observe_fido2_throttled();
            holds.push(hold.as_secs() / 60);
        }
        assert_eq!(
            holds,
            [40, 80, 160, 240, 240],
            "minutes, doubling up to 4 h"
        );
        // Quiet for the longest hold after one ended: back to the first hold.
        clock.advance(FIDO2_HOLD_MAX * 3);
        assert_eq!(limiter.observe_fido2_throttled(), FIDO2_HOLD_FIRST);
    }

    #[test]
    fn reports_budget_pacing_applies_to_every_fido2_call() {
        let (_clock, limiter) = limiter(RateLimits::documented(TenantSize::Large));
        limiter.set_fido2_pacing(Fido2Pacing::ReportsBudget);
        let options = RequestCost::of(
            "GET",
            "/v1.0/users/u/authentication/fido2Methods/creationOptions",
        );
        let admitted = (0..10)
            .take_while(|_| limiter.try_acquire(options).is_zero())
            .count();
        assert_eq!(admitted, 4, "95 % of 5 per 10 s");
    }

    #[test]
    fn tenant_sizes() {
        assert_eq!(TenantSize::from_user_count(10), TenantSize::Small);
        assert_eq!(TenantSize::from_user_count(50), TenantSize::Medium);
        assert_eq!(TenantSize::from_user_count(500), TenantSize::Medium);
        assert_eq!(TenantSize::from_user_count(100_000), TenantSize::Large);
        assert_eq!(TenantSize::Large.resource_units_per_10s(), 8_000);
    }

    #[tokio::test]
    async fn writes_run_just_under_the_150_second_quota() {
        let (clock, limiter) = limiter(RateLimits {
            resource_units_per_10s: None,
            writes_per_150s: Some(3_000),
            authentication_requests_per_10s: None,
            target_fraction: 0.95,
        });
        let write = RequestCost {
            resource_units: 1,
            writes: 1,
            authentication_requests: 0,
            fido2_requests: 0,
        };
        // 2,850 writes go at once; the next one waits for the first to leave the window.
        for _ in 0..2_850 {
            assert_eq!(limiter.try_acquire(write), Duration::ZERO);
        }
        assert_eq!(limiter.try_acquire(write), Duration::from_secs(150));
        // Over 10 simulated minutes the sustained rate is 95 % of 3,000 per 150 s.
        let mut sent = 2_850u32;
        while clock.elapsed() < Duration::from_secs(600) {
            limiter.acquire(write).await;
            sent += 1;
        }
        let per_150s = f64::from(sent) / (clock.elapsed().as_secs_f64() / 150.0);
        assert!(
            (2_800.0..=2_900.0).contains(&per_150s),
            "{per_150s} writes per 150 s"
        );
        // No 150-second window ever held more than the target.
        assert!(
            clock
                .sleeps()
                .iter()
                .all(|s| *s <= Duration::from_secs(150))
        );
    }

    #[test]
    fn resource_units_wait_for_exactly_enough_to_expire() {
        let (clock, limiter) = limiter(RateLimits {
            resource_units_per_10s: Some(100),
            writes_per_150s: None,
            authentication_requests_per_10s: None,
            target_fraction: 1.0,
        });
        let two = RequestCost {
            resource_units: 2,
            ..Default::default()
        };
        for _ in 0..50 {
            assert!(limiter.try_acquire(two).is_zero());
            clock.advance(Duration::from_millis(100));
        }
        // Full (100 RU); the oldest 2 RU leave the window 10 s after they were sent, at t = 10 s.
        assert_eq!(limiter.try_acquire(two), Duration::from_secs(5));
        clock.advance(Duration::from_secs(5));
        assert!(limiter.try_acquire(two).is_zero());
    }

    #[test]
    fn an_oversized_request_goes_into_an_empty_window() {
        let (_clock, limiter) = limiter(RateLimits {
            resource_units_per_10s: Some(10),
            writes_per_150s: None,
            authentication_requests_per_10s: None,
            target_fraction: 1.0,
        });
        let big = RequestCost {
            resource_units: 40,
            ..Default::default()
        };
        assert!(limiter.try_acquire(big).is_zero());
        assert_eq!(limiter.try_acquire(big), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn authentication_calls_pace_at_five_per_ten_seconds() {
        let (clock, limiter) = limiter(RateLimits::documented(TenantSize::Large));
        let fido = RequestCost::of("GET", "/v1.0/users/u/authentication/fido2Methods");
        for _ in 0..20 {
            limiter.acquire(fido).await;
        }
        // 95 % of 5 rounds down to 4 per window: 20 calls need 5 windows, the last starts at 40 s.
        assert_eq!(clock.elapsed(), Duration::from_secs(40));
    }

    #[test]
    fn throttle_percentage_slows_down_then_recovers() {
        let (clock, limiter) = limiter(RateLimits {
            resource_units_per_10s: Some(1_000),
            writes_per_150s: None,
            authentication_requests_per_10s: None,
            target_fraction: 1.0,
        });
        limiter.observe_throttle_percentage(0.85);
        assert_eq!(
            limiter.pressure(),
            1.0,
            "within our own target nothing changes"
        );
        limiter.observe_throttle_percentage(1.25);
        assert!(
            (limiter.pressure() - 0.8).abs() < 1e-9,
            "{}",
            limiter.pressure()
        );
        let one = RequestCost {
            resource_units: 1,
            ..Default::default()
        };
        let admitted = (0..1_000)
            .take_while(|_| limiter.try_acquire(one).is_zero())
            .count();
        assert_eq!(admitted, 800);
        for _ in 0..10 {
            limiter.observe_throttle_percentage(1.8);
        }
        assert_eq!(limiter.pressure(), MIN_PRESSURE);
        clock.advance(Duration::from_secs(100));
        assert!(
            (limiter.pressure() - 0.75).abs() < 1e-9,
            "recovers 5 % per 10 s"
        );
        clock.advance(Duration::from_secs(1_000));
        assert_eq!(limiter.pressure(), 1.0);
    }

    #[test]
    fn our_own_target_share_does_not_slow_us_down() {
        let (_clock, limiter) = limiter(RateLimits::documented(TenantSize::Large));
        limiter.observe_throttle_percentage(0.95);
        assert_eq!(limiter.pressure(), 1.0);
        limiter.observe_throttle_percentage(1.9);
        assert!(
            (limiter.pressure() - 0.5).abs() < 1e-9,
            "halved at most per answer"
        );
    }

    #[tokio::test]
    async fn a_retry_after_pause_holds_every_caller() {
        let (clock, limiter) = limiter(RateLimits::unlimited());
        let start = clock.now();
        limiter.pause_until(start + Duration::from_secs(7));
        assert_eq!(
            limiter.try_acquire(RequestCost::default()),
            Duration::from_secs(7)
        );
        let waited = limiter.acquire(RequestCost::default()).await;
        assert_eq!(waited, Duration::from_secs(7));
        assert!(limiter.try_acquire(RequestCost::default()).is_zero());
    }
}
