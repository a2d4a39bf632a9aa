//! Risk over time for one issue: [`TrendPoint`]s and an SVG chart of them.
//!
//! Every stored analysis of an issue becomes one [`TrendPoint`]; the API
//! serves the list as JSON and, with `?format=svg`, as the chart drawn by
//! [`render_svg`]. The chart is drawn with `plotters`' SVG backend, which
//! writes `<text>` elements and leaves font rendering to the browser, so no
//! font files are loaded and the output is byte-identical for the same input
//! (no clock, no randomness, no system fonts).
//!
//! Layout: a title with the issue key; an upper panel with the risk score
//! and the negative-comment share on one 0–100 axis and the unresolved
//! blockers as a step line with dots on a right-hand axis; a lower panel
//! with the daily cost of delay. Both panels share the date axis and have a
//! legend.

use chrono::{DateTime, Duration, Utc};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One analysis of one issue, as plotted by [`render_svg`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// When the analysis ran (its `now`).
    pub at: DateTime<Utc>,
    /// [`crate::IssueRisk::score`], 0–100.
    pub risk_score: u8,
    /// [`crate::IssueRisk::blocker_count`]: unresolved blockers.
    pub blocker_count: u32,
    /// Share of the issue's comments classified negative, as a fraction
    /// 0.0–1.0 (plotted as a percentage).
    pub negative_share: f64,
    /// [`crate::IssueRisk::daily_cost_of_delay`], in the tenant's currency.
    pub daily_cost: f64,
}

const WIDTH: u32 = 960;
const HEIGHT: u32 = 620;
const FONT: &str = "sans-serif";

/// Line colours, one per series (colour-blind-safe Okabe–Ito tones).
const RISK: RGBColor = RGBColor(213, 94, 0);
const NEGATIVE: RGBColor = RGBColor(0, 114, 178);
const BLOCKERS: RGBColor = RGBColor(120, 120, 120);
const COST: RGBColor = RGBColor(0, 158, 115);

/// Draws the trend of one issue as a standalone SVG document.
///
/// `points` may come in any order (they are sorted by time; ties keep
/// their order). No points gives a small SVG saying there are no analyses
/// yet; one point is drawn as dots on a one-day-wide axis. Non-finite or
/// negative values are drawn as 0, a `negative_share` above 1 as 100 %.
/// `currency` labels the cost axis (e.g. `"EUR"`).
pub fn render_svg(issue_key: &str, points: &[TrendPoint], currency: &str) -> String {
    let mut sorted: Vec<&TrendPoint> = points.iter().collect();
    sorted.sort_by_key(|p| p.at);
    let mut svg = String::new();
    let drawn = if sorted.is_empty() {
        draw_empty(&mut svg, issue_key)
    } else {
        draw_chart(&mut svg, issue_key, &sorted, currency)
    };
    match drawn {
        Ok(()) => svg,
        // Writing into a String cannot fail in practice; answer with a valid
        // document rather than a panic or a half-written one.
        Err(e) => fallback_svg(&format!(
            "Trend chart for {issue_key} could not be drawn: {e}"
        )),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_empty(svg: &mut String, issue_key: &str) -> DrawResult {
    let root = SVGBackend::with_string(svg, (WIDTH, 200)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = (FONT, 24).into_font().color(&BLACK);
    root.draw(&Text::new(
        format!("Risk trend: {issue_key}"),
        (24, 40),
        title,
    ))?;
    let body = (FONT, 18).into_font().color(&BLACK);
    root.draw(&Text::new(
        "No analyses yet: run an analysis of this issue to start its trend.",
        (24, 100),
        body,
    ))?;
    root.present()?;
    Ok(())
}

fn draw_chart(
    svg: &mut String,
    issue_key: &str,
    points: &[&TrendPoint],
    currency: &str,
) -> DrawResult {
    let first = points[0].at;
    let last = points[points.len() - 1].at;
    // x is in days since the first analysis: plain f64 coordinates keep
    // plotters' tick placement simple and let one point get a sensible axis.
    let day = |at: DateTime<Utc>| (at - first).num_seconds() as f64 / 86_400.0;
    let span = day(last);
    let (x0, x1) = if span <= 0.0 {
        (-0.5, 0.5)
    } else {
        (-span * 0.02, span * 1.02)
    };
    let label_x = move |x: &f64| {
        let at = first + Duration::seconds((x * 86_400.0).round() as i64);
        if span >= 2.0 {
            at.format("%Y-%m-%d").to_string()
        } else {
            at.format("%m-%d %H:%M").to_string()
        }
    };

    let risk: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (day(p.at), f64::from(p.risk_score.min(100))))
        .collect();
    let negative: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (day(p.at), clean(p.negative_share).min(1.0) * 100.0))
        .collect();
    let blockers: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (day(p.at), f64::from(p.blocker_count)))
        .collect();
    let cost: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (day(p.at), clean(p.daily_cost)))
        .collect();
    let max_blockers = blockers.iter().map(|b| b.1).fold(0.0, f64::max);
    let max_cost = cost.iter().map(|c| c.1).fold(0.0, f64::max);
    let blocker_top = (max_blockers + 1.0).ceil();

    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("Risk trend: {issue_key}"), (FONT, 24))?;
    let (upper, lower) = root.split_vertically(HEIGHT * 55 / 100 - 30);

    let mut top = ChartBuilder::on(&upper)
        .caption("Risk score, negative comments and blockers", (FONT, 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .right_y_label_area_size(56)
        .build_cartesian_2d(x0..x1, 0f64..100f64)?
        .set_secondary_coord(x0..x1, 0f64..blocker_top);
    top.configure_mesh()
        .x_labels(6)
        .x_label_formatter(&label_x)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("Risk score / negative %")
        .label_style((FONT, 12))
        .light_line_style(BLACK.mix(0.03))
        .draw()?;
    top.configure_secondary_axes()
        .y_desc("Unresolved blockers")
        // Whole numbers only: a count has no 0.5 tick.
        .y_labels(blocker_top as usize + 1)
        .y_label_formatter(&|y| {
            if y.fract().abs() < 1e-9 {
                format!("{y:.0}")
            } else {
                String::new()
            }
        })
        .label_style((FONT, 12))
        .draw()?;
    top.draw_series(LineSeries::new(risk.clone(), RISK.stroke_width(2)))?
        .label("Risk score (0-100)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RISK.stroke_width(2)));
    top.draw_series(risk.iter().map(|&p| Circle::new(p, 3, RISK.filled())))?;
    top.draw_series(LineSeries::new(negative.clone(), NEGATIVE.stroke_width(2)))?
        .label("Negative comments (%)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], NEGATIVE.stroke_width(2)));
    top.draw_series(
        negative
            .iter()
            .map(|&p| Circle::new(p, 3, NEGATIVE.filled())),
    )?;
    top.draw_secondary_series(LineSeries::new(steps(&blockers), BLOCKERS.stroke_width(2)))?
        .label("Unresolved blockers (right axis)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLOCKERS.stroke_width(2)));
    top.draw_secondary_series(
        blockers
            .iter()
            .map(|&p| Circle::new(p, 4, BLOCKERS.filled())),
    )?;
    top.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;

    let mut bottom = ChartBuilder::on(&lower)
        .caption("Daily cost of delay", (FONT, 16))
        .margin(12)
        // Same plot width as the upper panel, which has a right axis.
        .margin_right(12 + 56)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, 0f64..nice_max(max_cost))?;
    bottom
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&label_x)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("Analysis date (UTC)")
        .y_desc(format!("{currency} per day").trim_start().to_string())
        .label_style((FONT, 12))
        .light_line_style(BLACK.mix(0.03))
        .draw()?;
    bottom
        .draw_series(LineSeries::new(cost.clone(), COST.stroke_width(2)))?
        .label(if currency.is_empty() {
            "Daily cost of delay".to_string()
        } else {
            format!("Daily cost of delay ({currency})")
        })
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], COST.stroke_width(2)));
    bottom.draw_series(cost.iter().map(|&p| Circle::new(p, 3, COST.filled())))?;
    bottom
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    root.present()?;
    Ok(())
}

/// A blocker count holds until the next analysis, so it is drawn as a step
/// line (horizontal, then vertical).
fn steps(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, &(x, y)) in points.iter().enumerate() {
        if i > 0 {
            out.push((x, points[i - 1].1));
        }
        out.push((x, y));
    }
    out
}

/// Upper bound of the cost axis: 10 % headroom, never an empty range.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        1.0
    } else {
        (max * 1.1).ceil()
    }
}

fn clean(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

fn fallback_svg(message: &str) -> String {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg width=\"{WIDTH}\" height=\"80\" viewBox=\"0 0 {WIDTH} 80\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"24\" y=\"40\" font-family=\"{FONT}\" font-size=\"16\">{escaped}</text></svg>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn point(day: u32, risk: u8, blockers: u32, neg: f64, cost: f64) -> TrendPoint {
        TrendPoint {
            at: Utc.with_ymd_and_hms(2024, 5, day, 9, 0, 0).unwrap(),
            risk_score: risk,
            blocker_count: blockers,
            negative_share: neg,
            daily_cost: cost,
        }
    }

    fn series() -> Vec<TrendPoint> {
        vec![
            point(1, 20, 0, 0.0, 100.0),
            point(3, 45, 1, 0.25, 420.5),
            point(6, 70, 2, 0.5, 1250.0),
            point(9, 55, 1, 1.0 / 3.0, 900.0),
        ]
    }

    #[test]
    fn chart_has_title_axes_legend_and_one_line_per_series() {
        let svg = render_svg("ED-<1>", &series(), "EUR");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "Risk trend: ED-&lt;1&gt;",
            "Risk score / negative %",
            "Unresolved blockers",
            "EUR per day",
            "Analysis date (UTC)",
            "Risk score (0-100)",
            "Negative comments (%)",
            "Daily cost of delay (EUR)",
            "2024-05-0",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        // Each series: its line and its legend swatch, in its own colour.
        for colour in ["#D55E00", "#0072B2", "#787878", "#009E73"] {
            let lines = svg
                .split("<polyline")
                .skip(1)
                .map(|el| el.split('>').next().unwrap_or(""))
                .filter(|el| el.contains(&format!("stroke=\"{colour}\"")))
                .count();
            assert_eq!(lines, 2, "polylines in {colour}");
        }
        // A dot per point per series.
        assert_eq!(svg.matches("<circle").count(), 4 * 4);
    }

    #[test]
    fn output_is_deterministic_and_order_independent() {
        let a = render_svg("ED-1", &series(), "USD");
        let mut shuffled = series();
        shuffled.reverse();
        assert_eq!(a, render_svg("ED-1", &shuffled, "USD"));
    }

    #[test]
    fn no_points_says_so() {
        let svg = render_svg("ED-7", &[], "EUR");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("ED-7"));
        assert!(svg.contains("No analyses yet"));
        assert_eq!(svg.matches("<polyline").count(), 0);
    }

    #[test]
    fn one_point_is_drawn_as_dots() {
        let svg = render_svg("ED-2", &[point(4, 80, 3, 2.0, f64::NAN)], "EUR");
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Risk trend: ED-2"));
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("05-04 09:00"), "date label");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn points_round_trip_as_json() {
        let p = series();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Vec<TrendPoint>>(&json).unwrap(), p);
    }
}
