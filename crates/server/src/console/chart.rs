//! The dashboard's enrolment funnel chart: an SVG drawn on the server (no script, no
//! external resources; presentation attributes only, which the CSP allows).

use std::fmt::Write as _;

/// One line of the chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: &'static str,
    /// Stroke colour (a hex colour with enough contrast on white).
    pub colour: &'static str,
    /// One value per day, oldest first.
    pub values: Vec<i64>,
}

const WIDTH: i64 = 720;
const HEIGHT: i64 = 260;
const LEFT: i64 = 56;
const RIGHT: i64 = 16;
const TOP: i64 = 16;
const BOTTOM: i64 = 56;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The largest value rounded up to a readable axis maximum (1, 2 or 5 × 10ⁿ).
fn axis_max(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= max.max(1) {
                return step * factor;
            }
        }
        step *= 10;
    }
}

/// A line chart of `series` over `days` (labels such as `11-25`), with axes, a legend, and a
/// title and description for assistive technology.
pub fn line_chart(title: &str, days: &[String], series: &[Series]) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let top = axis_max(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| -> i64 {
        let n = i64::try_from(days.len().max(2) - 1).unwrap_or(1);
        LEFT + i64::try_from(i).unwrap_or(0) * plot_w / n
    };
    let y = |v: i64| -> i64 { TOP + plot_h - v.clamp(0, top) * plot_h / top };
    let mut svg = String::new();
    let description: Vec<String> = series
        .iter()
        .map(|s| format!("{}: {}", s.label, s.values.last().copied().unwrap_or(0)))
        .collect();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-labelledby=\"chart-title chart-desc\" class=\"chart\">\
         <title id=\"chart-title\">{}</title><desc id=\"chart-desc\">{} on the last day shown.</desc>",
        escape(title),
        escape(&description.join(", "))
    );
    // Grid and y axis labels: 0, half, top.
    for value in [0, top / 2, top] {
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"#d5dae1\" stroke-width=\"1\"/>\
             <text x=\"{label_x}\" y=\"{label_y}\" text-anchor=\"end\" font-size=\"12\" fill=\"#4a5566\">{value}</text>",
            right = WIDTH - RIGHT,
            label_x = LEFT - 8,
            yy = y(value),
            label_y = y(value) + 4
        );
    }
    // X labels: first, middle, last day.
    if !days.is_empty() {
        let mut shown = vec![0, days.len() / 2, days.len() - 1];
        shown.dedup();
        for i in shown {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#4a5566\">{}</text>",
                x(i),
                HEIGHT - BOTTOM + 18,
                escape(&days[i])
            );
        }
    }
    for s in series {
        let points: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{},{}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2.5\" points=\"{}\"/>",
            s.colour,
            points.join(" ")
        );
    }
    // Legend under the axis.
    let mut lx = LEFT;
    for s in series {
        let _ = write!(
            svg,
            "<rect x=\"{lx}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#1b2330\">{}</text>",
            HEIGHT - 18,
            s.colour,
            lx + 20,
            HEIGHT - 12,
            escape(s.label)
        );
        lx += 30 + i64::try_from(s.label.len()).unwrap_or(10) * 7;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(
            [0, 1, 3, 7, 10, 11, 420, 100_000].map(axis_max),
            [1, 1, 5, 10, 10, 20, 500, 100_000]
        );
    }

    #[test]
    fn the_chart_draws_one_line_per_series_with_accessible_text() {
        let days: Vec<String> = ["11-23", "11-24", "11-25"].map(String::from).to_vec();
        let svg = line_chart(
            "Enrolment <funnel>",
            &days,
            &[
                Series {
                    label: "Invited",
                    colour: "#0b57d0",
                    values: vec![1, 4, 10],
                },
                Series {
                    label: "Paired",
                    colour: "#146c2e",
                    values: vec![0, 2, 5],
                },
            ],
        );
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("<title id=\"chart-title\">Enrolment &lt;funnel&gt;</title>"));
        assert!(svg.contains("Invited: 10, Paired: 5 on the last day shown."));
        // The top of the axis is 10: the last invited point is at the plot's top edge.
        assert!(svg.contains(&format!("{},{}", WIDTH - RIGHT, TOP)), "{svg}");
        assert!(!svg.contains("style="));
    }
}
