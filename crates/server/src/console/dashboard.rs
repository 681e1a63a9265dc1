//! The dashboard (`/console`): the enrolment funnel (Pending → Paired with keybridge →
//! Paired with Entra) as counts across integrations, and the last 30 days of invitations,
//! pairings and registrations as an SVG chart drawn on the server.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use keybridge_store::Timestamp;

use super::chart::{Series, line_chart};
use super::error::ConsoleError;
use super::flash::IncomingFlash;
use super::page::{Layout, Section, render};
use super::session::ConsoleSession;
use crate::app::App;
use crate::auth::AnyRole;

/// Days the chart covers.
pub const CHART_DAYS: usize = 30;
const DAY_MILLIS: i64 = 86_400_000;

/// The audit actions the chart counts, with their legend and colour.
const FUNNEL_ACTIONS: [(&str, &str, &str); 3] = [
    ("user.invite", "Invited", "#0b57d0"),
    ("device.pair", "Paired with keybridge", "#8a4b00"),
    ("user.passkey_registered", "Registered in Entra", "#146c2e"),
];

struct Stage {
    label: &'static str,
    count: i64,
    /// Share of all users, in percent.
    percent: i64,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    layout: Layout,
    username: String,
    integrations: usize,
    total: i64,
    stages: Vec<Stage>,
    chart_svg: String,
    chart_rows: Vec<(String, i64, i64, i64)>,
}

/// The chart's days (UTC, oldest first) and each action's running total over them.
fn cumulative(
    counts: &[keybridge_store::DailyCount],
    first_day: i64,
) -> (Vec<String>, Vec<Vec<i64>>) {
    let mut by_day: HashMap<(i64, &str), i64> = HashMap::new();
    for c in counts {
        by_day.insert((c.day.unix_millis(), c.action.as_str()), c.count);
    }
    let days: Vec<i64> = (0..CHART_DAYS as i64)
        .map(|i| first_day + i * DAY_MILLIS)
        .collect();
    let labels = days
        .iter()
        .map(|d| {
            Timestamp::from_unix_millis(*d)
                .to_rfc3339()
                .get(5..10)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    let series = FUNNEL_ACTIONS
        .iter()
        .map(|(action, _, _)| {
            let mut total = 0;
            days.iter()
                .map(|d| {
                    total += by_day.get(&(*d, *action)).copied().unwrap_or(0);
                    total
                })
                .collect()
        })
        .collect();
    (labels, series)
}

/// `GET /console`.
pub async fn show(
    State(app): State<App>,
    session: ConsoleSession<AnyRole>,
    IncomingFlash(flash): IncomingFlash,
) -> Result<Response, ConsoleError> {
    let store = app.store();
    let integrations = store.integrations().list().await?;
    let (mut pending, mut paired, mut registered) = (0, 0, 0);
    for integration in &integrations {
        let counts = store.users().count_by_state(&integration.id).await?;
        pending += counts.pending;
        paired += counts.paired_with_keybridge;
        registered += counts.paired_with_entra;
    }
    let total = pending + paired + registered;
    let percent = |n: i64| if total == 0 { 0 } else { n * 100 / total };
    let stages = vec![
        Stage {
            label: "Pending",
            count: pending,
            percent: percent(pending),
            state: "pending",
        },
        Stage {
            label: "Paired with keybridge",
            count: paired,
            percent: percent(paired),
            state: "paired_with_keybridge",
        },
        Stage {
            label: "Paired with Entra",
            count: registered,
            percent: percent(registered),
            state: "paired_with_entra",
        },
    ];
    let today = Timestamp::now().unix_millis() / DAY_MILLIS * DAY_MILLIS;
    let first_day = today - (CHART_DAYS as i64 - 1) * DAY_MILLIS;
    let actions: Vec<&str> = FUNNEL_ACTIONS.iter().map(|(a, _, _)| *a).collect();
    let counts = store
        .audit()
        .count_by_day(&actions, Timestamp::from_unix_millis(first_day))
        .await?;
    let (labels, values) = cumulative(&counts, first_day);
    let series: Vec<Series> = FUNNEL_ACTIONS
        .iter()
        .zip(values)
        .map(|((_, label, colour), values)| Series {
            label,
            colour,
            values,
        })
        .collect();
    let chart_svg = line_chart(
        &format!("Enrolment over the last {CHART_DAYS} days (running totals)"),
        &labels,
        &series,
    );
    let chart_rows = labels
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let at = |s: usize| {
                series
                    .get(s)
                    .and_then(|s| s.values.get(i))
                    .copied()
                    .unwrap_or(0)
            };
            (day.clone(), at(0), at(1), at(2))
        })
        .collect();
    let page = DashboardPage {
        layout: session.layout("Dashboard", Section::Dashboard, flash),
        username: session.admin.username.clone(),
        integrations: integrations.len(),
        total,
        stages,
        chart_svg,
        chart_rows,
    };
    Ok(render(&page, &page.layout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keybridge_store::DailyCount;

    #[test]
    fn running_totals_fill_days_without_events() {
        let first = 100 * DAY_MILLIS;
        let counts = vec![
            DailyCount {
                day: Timestamp::from_unix_millis(first),
                action: "user.invite".into(),
                count: 3,
            },
            DailyCount {
                day: Timestamp::from_unix_millis(first + 2 * DAY_MILLIS),
                action: "user.invite".into(),
                count: 2,
            },
            DailyCount {
                day: Timestamp::from_unix_millis(first + 2 * DAY_MILLIS),
                action: "device.pair".into(),
                count: 1,
            },
        ];
        let (labels, series) = cumulative(&counts, first);
        assert_eq!(labels.len(), CHART_DAYS);
        assert_eq!(&series[0][..4], &[3, 3, 5, 5]);
        assert_eq!(&series[1][..4], &[0, 0, 1, 1]);
        assert_eq!(series[2].iter().sum::<i64>(), 0);
        assert_eq!(*series[0].last().expect("days"), 5);
    }
}
