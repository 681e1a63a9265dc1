//! The running emulator's shared state: the tenant, the signing key, and the traffic controls
//! (faults, throttling, counters) that the control API changes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::model::Tenant;
use crate::pki::SigningKey;

/// Shared by every handler.
pub(crate) struct Sim {
    /// The tenant (in memory; persisted by [`crate::persist`]).
    pub tenant: RwLock<Tenant>,
    /// Signalled after every change so that the snapshot gets written.
    pub dirty: Notify,
    /// Where the snapshot and keys live.
    pub data_dir: PathBuf,
    /// `https://localhost:PORT` (no trailing slash).
    pub base_url: String,
    /// Key that signs access tokens.
    pub signing: SigningKey,
    /// Lifetime of access tokens in seconds.
    pub token_lifetime_secs: i64,
    /// Client-assertion `jti`s seen, with their expiry (unix seconds), for replay detection.
    pub seen_assertion_ids: Mutex<HashMap<String, i64>>,
    /// Traffic controls.
    pub traffic: Traffic,
    /// FIDO2 challenges already used (strict single-use mode), with their expiry.
    pub used_challenges: Mutex<HashMap<String, i64>>,
    /// Registration challenges must be single-use (off by default, like Entra's stateless ones \[I\]).
    pub strict_single_use: std::sync::atomic::AtomicBool,
    /// Pending sign-in ceremonies by challenge.
    pub sign_in_challenges: Mutex<HashMap<String, crate::signin::PendingSignIn>>,
    /// Loaded FIDO metadata, when `--mds-blob` was given.
    pub metadata: Option<crate::fido2::Metadata>,
    /// Origins a registration's clientDataJSON may name (default: Entra's three, §0 \[I\]).
    pub registration_origins: RwLock<Vec<String>>,
    /// How long a new group answers member writes with 404 (ms; control API).
    pub group_replication_ms: std::sync::atomic::AtomicU64,
    /// Seconds added to the real clock (control API), to test expiry without waiting.
    pub clock_offset_secs: std::sync::atomic::AtomicI64,
}

impl Sim {
    /// The emulator's clock: real time plus the offset set through the control API.
    pub fn now(&self) -> time::OffsetDateTime {
        let offset = self
            .clock_offset_secs
            .load(std::sync::atomic::Ordering::Relaxed);
        time::OffsetDateTime::now_utc() + time::Duration::seconds(offset)
    }

    /// Notes that the tenant changed.
    pub fn changed(&self) {
        self.dirty.notify_one();
    }

    /// Read access to the tenant (a poisoned lock still holds consistent data: writers never
    /// leave it half-changed across a panic point).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Tenant> {
        self.tenant.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access to the tenant.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tenant> {
        self.tenant.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// What happens to a request before it reaches its handler.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Fault rules, in order.
    pub faults: Mutex<Vec<FaultRule>>,
    /// Latency added to every request (ms).
    pub latency_ms: std::sync::atomic::AtomicU64,
    /// Throttling mode and budgets.
    pub throttle: Mutex<Throttle>,
    /// Request counters.
    pub counters: Mutex<Counters>,
}

/// One fault rule set through the control API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// Path prefix the rule applies to, with or without the `/v1.0` or `/beta` version
    /// (e.g. `/users`, `/v1.0/groups`, `/{tenant}/oauth2`); empty = every path.
    #[serde(default)]
    pub path: String,
    /// HTTP method, any when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// What to do.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Fraction of matching requests affected (0–1, default 1).
    #[serde(default = "one")]
    pub fraction: f64,
    /// Fire at most this many times, then the rule is spent.
    #[serde(default)]
    pub count: Option<u64>,
}

fn one() -> f64 {
    1.0
}

/// The kinds of fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum FaultKind {
    /// Answer with a server error (503 by default; 500, 502, 504 also make sense).
    Error {
        /// Status code.
        #[serde(default = "service_unavailable")]
        status: u16,
        /// `Retry-After` seconds to send with it.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Answer 429 with `Retry-After`.
    Throttle {
        /// `Retry-After` seconds.
        #[serde(default = "two")]
        retry_after: u64,
    },
    /// Close the connection without an answer, before the request is handled (no effect).
    Drop,
    /// Handle the request (its effect happens), then close the connection without sending the
    /// answer: a write the service made while the client saw only a broken connection.
    DropAfter,
    /// Answer after a delay.
    Slow {
        /// Delay in milliseconds.
        delay_ms: u64,
    },
}

fn service_unavailable() -> u16 {
    503
}
fn two() -> u64 {
    2
}

impl FaultRule {
    /// Whether the rule applies to this request.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if let Some(m) = &self.method
            && !m.eq_ignore_ascii_case(method)
        {
            return false;
        }
        if self.path.is_empty() || starts_with_ci(path, &self.path) {
            return true;
        }
        let unversioned = path
            .strip_prefix("/v1.0")
            .or_else(|| path.strip_prefix("/beta"))
            .unwrap_or(path);
        starts_with_ci(unversioned, &self.path)
    }
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Throttling modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum ThrottleMode {
    /// No throttling.
    #[default]
    Off,
    /// Graph's documented identity-and-access quotas.
    Graph,
    /// Also the reports budget (5 requests / 10 s) on authentication-method reads \[I\].
    Strict,
}

/// A fixed window of a budget.
#[derive(Debug)]
pub(crate) struct Window {
    pub started: Instant,
    pub used: u64,
}

impl Window {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            used: 0,
        }
    }

    /// Rolls the window over when its length has passed; returns seconds left in it.
    fn roll(&mut self, length_secs: u64) -> u64 {
        let elapsed = self.started.elapsed().as_secs();
        if elapsed >= length_secs {
            self.started = Instant::now();
            self.used = 0;
            return length_secs;
        }
        length_secs - elapsed
    }
}

/// Throttling state.
#[derive(Debug)]
pub(crate) struct Throttle {
    pub mode: ThrottleMode,
    pub resource_units: Window,
    pub writes: Window,
    pub reports: Window,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            mode: ThrottleMode::Off,
            resource_units: Window::new(),
            writes: Window::new(),
            reports: Window::new(),
        }
    }
}

/// Outcome of charging a request against the budgets.
#[derive(Debug)]
pub(crate) enum Charge {
    /// Allowed; optional `x-ms-throttle-limit-percentage` to send.
    Allowed { limit_percentage: Option<f64> },
    /// Refused.
    Throttled {
        retry_after: u64,
        information: &'static str,
    },
}

/// ResourceUnits per 10 s for a tenant of this size (§2.5).
pub(crate) fn resource_unit_limit(user_count: usize) -> u64 {
    match user_count {
        0..50 => 3_500,
        50..=500 => 5_000,
        _ => 8_000,
    }
}

/// Writes per 150 s per app and tenant.
pub(crate) const WRITE_LIMIT: u64 = 3_000;
/// Reports budget per 10 s per app and tenant.
pub(crate) const REPORTS_LIMIT: u64 = 5;

impl Throttle {
    /// Charges one request; throttled requests still count, as in Graph.
    pub fn charge(&mut self, cost: u64, write: bool, report: bool, user_count: usize) -> Charge {
        if self.mode == ThrottleMode::Off {
            return Charge::Allowed {
                limit_percentage: None,
            };
        }
        let ru_limit = resource_unit_limit(user_count);
        let ru_left = self.resource_units.roll(10);
        let write_left = self.writes.roll(150);
        let report_left = self.reports.roll(10);
        self.resource_units.used += cost;
        if write {
            self.writes.used += 1;
        }
        if report && self.mode == ThrottleMode::Strict {
            self.reports.used += 1;
            if self.reports.used > REPORTS_LIMIT {
                return Charge::Throttled {
                    retry_after: report_left,
                    information: "ResourceUnitLimitExceeded",
                };
            }
        }
        if self.resource_units.used > ru_limit {
            return Charge::Throttled {
                retry_after: ru_left,
                information: "ResourceUnitLimitExceeded",
            };
        }
        if write && self.writes.used > WRITE_LIMIT {
            return Charge::Throttled {
                retry_after: write_left,
                information: "WriteLimitExceeded",
            };
        }
        #[allow(clippy::cast_precision_loss)] // budgets are far below 2^52
        let ratio = (self.resource_units.used as f64 / ru_limit as f64).max(if write {
            self.writes.used as f64 / WRITE_LIMIT as f64
        } else {
            0.0
        });
        Charge::Allowed {
            limit_percentage: (ratio >= 0.8).then_some(ratio),
        }
    }
}

/// Request counters for benchmarks.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Requests by endpoint (`GET /v1.0/users/{id}`) then status code.
    pub requests: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Total requests.
    pub total: u64,
    /// 429 answers sent (throttling and injected).
    pub throttled: u64,
    /// Faults injected.
    pub faults_injected: u64,
    /// Connections dropped on purpose.
    pub dropped: u64,
}

impl Counters {
    /// Counts one answered request.
    pub fn record(&mut self, endpoint: &str, status: u16) {
        self.total += 1;
        if status == 429 {
            self.throttled += 1;
        }
        let by_status = match self.requests.get_mut(endpoint) {
            Some(map) => map,
            None => self.requests.entry(endpoint.to_owned()).or_default(),
        };
        *by_status.entry(status).or_insert(0) += 1;
    }
}

/// A decision taken by the fault rules for one request.
#[derive(Debug, Default)]
pub(crate) struct FaultDecision {
    /// Sleep this long first.
    pub delay_ms: u64,
    /// Then answer with this instead of the handler.
    pub outcome: Option<FaultOutcome>,
}

/// What a fault does instead of (or, for `DropAfter`, after) the handler.
#[derive(Debug)]
pub(crate) enum FaultOutcome {
    Error {
        status: u16,
        retry_after: Option<u64>,
    },
    Throttle {
        retry_after: u64,
    },
    Drop,
    /// Run the handler, then drop its answer.
    DropAfter,
}

impl FaultKind {
    /// What the kind does to the answer; `None` for `slow`, which only delays it.
    fn outcome(&self) -> Option<FaultOutcome> {
        match self {
            FaultKind::Slow { .. } => None,
            FaultKind::Error {
                status,
                retry_after,
            } => Some(FaultOutcome::Error {
                status: *status,
                retry_after: *retry_after,
            }),
            FaultKind::Throttle { retry_after } => Some(FaultOutcome::Throttle {
                retry_after: *retry_after,
            }),
            FaultKind::Drop => Some(FaultOutcome::Drop),
            FaultKind::DropAfter => Some(FaultOutcome::DropAfter),
        }
    }
}

impl Traffic {
    /// Applies latency and the fault rules to a request.
    ///
    /// Rules are read in order. Every matching `slow` rule that fires adds its delay; of the
    /// other kinds the first matching rule that fires decides the answer, and the later ones
    /// are left untouched. Only a rule that fires spends one of its `count`, so several rules
    /// on one path take turns instead of being used up by the first.
    pub fn decide(&self, method: &str, path: &str) -> FaultDecision {
        let mut decision = FaultDecision {
            delay_ms: self.latency_ms.load(std::sync::atomic::Ordering::Relaxed),
            outcome: None,
        };
        let mut rules = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if rules.is_empty() {
            return decision;
        }
        for rule in rules.iter_mut() {
            if rule.count == Some(0) || !rule.matches(method, path) {
                continue;
            }
            let outcome = rule.kind.outcome();
            if outcome.is_some() && decision.outcome.is_some() {
                // The answer is already decided: this rule neither fires nor spends its count.
                continue;
            }
            if rule.fraction < 1.0 && rand::random::<f64>() >= rule.fraction {
                continue;
            }
            if let Some(count) = rule.count.as_mut() {
                *count -= 1;
            }
            match (&rule.kind, outcome) {
                (FaultKind::Slow { delay_ms }, _) => decision.delay_ms += delay_ms,
                (_, outcome) => decision.outcome = outcome,
            }
        }
        if decision.outcome.is_some() {
            self.counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .faults_injected += 1;
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_rules_parse_and_match() {
        let rule: FaultRule = serde_json::from_value(serde_json::json!(
            {"path": "/users", "kind": "throttle", "retryAfter": 3, "count": 2}
        ))
        .expect("rule");
        assert!(rule.matches("GET", "/v1.0/users/abc"));
        assert!(rule.matches("GET", "/beta/users"));
        assert!(!rule.matches("GET", "/v1.0/groups"));
        let traffic = Traffic::default();
        traffic.faults.lock().expect("lock").push(rule);
        for _ in 0..2 {
            assert!(matches!(
                traffic.decide("GET", "/v1.0/users").outcome,
                Some(FaultOutcome::Throttle { retry_after: 3 })
            ));
        }
        assert!(traffic.decide("GET", "/v1.0/users").outcome.is_none());
    }

    fn rules(json: serde_json::Value) -> Traffic {
        let rules: Vec<FaultRule> = serde_json::from_value(json).expect("rules");
        let traffic = Traffic::default();
        *traffic.faults.lock().expect("lock") = rules;
        traffic
    }

    fn outcome_name(decision: &FaultDecision) -> &'static str {
        match decision.outcome {
            None => "none",
            Some(FaultOutcome::Error { .. }) => "error",
            Some(FaultOutcome::Throttle { .. }) => "throttle",
            Some(FaultOutcome::Drop) => "drop",
            Some(FaultOutcome::DropAfter) => "dropAfter",
        }
    }

    #[test]
    fn several_rules_on_one_path_take_turns() {
        let traffic = rules(serde_json::json!([
            {"path": "/users", "kind": "error", "count": 1},
            {"path": "/users", "kind": "throttle", "count": 2},
            {"path": "/users", "kind": "dropAfter", "count": 1},
        ]));
        let seen: Vec<_> = (0..5)
            .map(|_| outcome_name(&traffic.decide("POST", "/v1.0/users")))
            .collect();
        assert_eq!(seen, ["error", "throttle", "throttle", "dropAfter", "none"]);
        assert_eq!(
            traffic.counters.lock().expect("lock").faults_injected,
            4,
            "one fault per faulted request"
        );
    }

    #[test]
    fn the_first_rule_matching_the_method_fires() {
        let traffic = rules(serde_json::json!([
            {"path": "/users", "method": "GET", "kind": "error", "status": 502},
            {"path": "/users", "method": "POST", "kind": "dropAfter"},
            {"path": "/users", "kind": "throttle"},
        ]));
        assert!(matches!(
            traffic.decide("GET", "/v1.0/users").outcome,
            Some(FaultOutcome::Error { status: 502, .. })
        ));
        assert_eq!(
            outcome_name(&traffic.decide("post", "/users/x")),
            "dropAfter"
        );
        assert_eq!(
            outcome_name(&traffic.decide("PATCH", "/beta/users/x")),
            "throttle"
        );
    }

    #[test]
    fn slow_rules_add_up_and_a_rule_that_does_not_fire_leaves_the_next_one() {
        let traffic = rules(serde_json::json!([
            {"path": "/groups", "kind": "slow", "delayMs": 30, "count": 1},
            {"path": "/groups", "kind": "drop", "fraction": 0.0},
            {"path": "", "kind": "slow", "delayMs": 5},
            {"path": "/groups", "kind": "error", "count": 1},
        ]));
        let first = traffic.decide("GET", "/v1.0/groups");
        assert_eq!(first.delay_ms, 35);
        assert_eq!(outcome_name(&first), "error");
        let second = traffic.decide("GET", "/v1.0/groups");
        assert_eq!(second.delay_ms, 5);
        assert_eq!(outcome_name(&second), "none");
    }

    #[test]
    fn budgets_follow_tenant_size() {
        assert_eq!(resource_unit_limit(10), 3_500);
        assert_eq!(resource_unit_limit(50), 5_000);
        assert_eq!(resource_unit_limit(501), 8_000);
        let mut throttle = Throttle {
            mode: ThrottleMode::Graph,
            ..Throttle::default()
        };
        let mut throttled_at = None;
        for i in 0..2_000 {
            if let Charge::Throttled { retry_after, .. } = throttle.charge(2, false, false, 10) {
                assert!((1..=10).contains(&retry_after));
                throttled_at = Some(i);
                break;
            }
        }
        // 3,500 RU at 2 RU a request: the 1,751st request is refused.
        assert_eq!(throttled_at, Some(1_750));
    }

    #[test]
    fn writes_have_their_own_budget_and_percentages_show_past_80() {
        let mut throttle = Throttle {
            mode: ThrottleMode::Graph,
            ..Throttle::default()
        };
        // 8,000 RU for a large tenant, so 3,000 writes hit the write budget first.
        let mut refused = None;
        let mut warned = false;
        for i in 0..3_001 {
            match throttle.charge(1, true, false, 1_000) {
                Charge::Throttled { information, .. } => {
                    refused = Some((i, information));
                    break;
                }
                Charge::Allowed { limit_percentage } => warned |= limit_percentage.is_some(),
            }
        }
        assert_eq!(refused, Some((3_000, "WriteLimitExceeded")));
        assert!(warned, "x-ms-throttle-limit-percentage past 80 %");
        let mut off = Throttle::default();
        for _ in 0..10_000 {
            assert!(matches!(
                off.charge(5, true, true, 1),
                Charge::Allowed {
                    limit_percentage: None
                }
            ));
        }
    }
}
