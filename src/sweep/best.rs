//! Which point of a sweep is best, and whether the data can tell. Seven settings that all
//! pass 3 of 3 cases are tied, and a leader at 9 of 10 is not shown better than a
//! runner-up at 8 of 10 when their 95% intervals overlap; naming one of them "best" would
//! be reading noise. The report then says how many points it cannot tell apart.

use super::{SweepPoint, SweepReport, setting_text};
use crate::score::stats::format_rate;

/// The verdict on a sweep's points.
#[derive(Debug, Clone, PartialEq)]
pub enum Best<'a> {
    /// Ahead of every other point: no other point ties it or has a 95% interval that
    /// overlaps its own.
    Clear(&'a SweepPoint),
    /// The leader (highest rate, then mean score) cannot be told apart from
    /// `contenders - 1` other points; `tied` points (the leader included) have its rate.
    Unclear {
        leader: &'a SweepPoint,
        contenders: usize,
        tied: usize,
    },
}

impl SweepReport {
    /// The best point, when the sweep has any.
    pub fn best(&self) -> Option<Best<'_>> {
        let leader = self.points.iter().max_by(|a, b| {
            a.pass_rate
                .total_cmp(&b.pass_rate)
                .then(a.mean_score.total_cmp(&b.mean_score))
        })?;
        let tied = self
            .points
            .iter()
            .filter(|p| p.pass_rate == leader.pass_rate)
            .count();
        let contenders = self
            .points
            .iter()
            .filter(|p| {
                std::ptr::eq(*p, leader)
                    || p.pass_rate == leader.pass_rate
                    || match (p.pass_interval, leader.pass_interval) {
                        (Some((_, high)), Some((low, _))) => high >= low,
                        // No interval (no cases): nothing says it is behind.
                        _ => true,
                    }
            })
            .count();
        Some(if contenders == 1 {
            Best::Clear(leader)
        } else {
            Best::Unclear {
                leader,
                contenders,
                tied,
            }
        })
    }

    /// The verdict in one sentence, as the CLI and the reports print it.
    pub fn best_text(&self) -> Option<String> {
        Some(match self.best()? {
            Best::Clear(point) => format!(
                "best: {} ({} {})",
                point_text(point),
                self.metric,
                format_rate(point.passed, point.cases)
            ),
            Best::Unclear {
                leader,
                contenders,
                tied,
            } if tied == contenders => format!(
                "no single best: {tied} points tie at {} {}; more cases would be needed to tell them apart",
                self.metric,
                format_rate(leader.passed, leader.cases)
            ),
            Best::Unclear {
                leader, contenders, ..
            } => format!(
                "no clear best: {} leads ({} {}), but the 95% intervals of {} other points overlap its own; more cases would be needed to tell them apart",
                point_text(leader),
                self.metric,
                format_rate(leader.passed, leader.cases),
                contenders - 1
            ),
        })
    }
}

/// "prompt @ model with temperature=0.2", or just the setting for a training sweep.
fn point_text(point: &SweepPoint) -> String {
    if point.prompt.is_empty() {
        setting_text(&point.values)
    } else {
        format!(
            "{} @ {} with {}",
            point.prompt,
            point.model,
            setting_text(&point.values)
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::score::stats::wilson_interval;

    fn point(temperature: f64, passed: usize, cases: usize) -> SweepPoint {
        SweepPoint {
            run_id: None,
            prompt: "p".into(),
            model: "m".into(),
            values: BTreeMap::from([("temperature".to_string(), temperature.into())]),
            cases,
            passed,
            pass_rate: passed as f64 / cases as f64,
            pass_interval: wilson_interval(passed, cases),
            mean_score: passed as f64 / cases as f64,
            mean_latency_ms: 1.0,
        }
    }

    fn report(points: Vec<SweepPoint>) -> SweepReport {
        SweepReport {
            sweep_id: Some(1),
            eval_set: "s".into(),
            metric: "pass rate".into(),
            params: vec!["temperature".into()],
            points,
        }
    }

    /// Issue 21: a sweep named one "best" point among seven tied at 100%.
    #[test]
    fn seven_points_tied_at_the_top_have_no_single_best() {
        let mut points: Vec<SweepPoint> = (0..7).map(|i| point(i as f64 / 10.0, 3, 3)).collect();
        points.push(point(1.5, 1, 3));
        let report = report(points);
        assert!(matches!(
            report.best(),
            Some(Best::Unclear {
                contenders: 8,
                tied: 7,
                ..
            })
        ));
        let text = report.best_text().unwrap();
        // 1 of 3 has the interval [6.1–79.2]%, which overlaps 3 of 3's [43.9–100]%: a
        // contender, so the sentence is about overlap, not a plain tie.
        assert!(
            text.starts_with("no clear best: p @ m with temperature="),
            "{text}"
        );
        assert!(text.contains("7 other points"), "{text}");

        let tied_only = report_of_ties();
        assert_eq!(
            tied_only.best_text().unwrap(),
            "no single best: 7 points tie at pass rate 100.0% [43.9–100.0]; more cases would be needed to tell them apart"
        );
    }

    fn report_of_ties() -> SweepReport {
        report((0..7).map(|i| point(i as f64 / 10.0, 3, 3)).collect())
    }

    #[test]
    fn a_leader_whose_interval_clears_the_runner_up_is_named() {
        let report = report(vec![point(0.2, 95, 100), point(0.8, 60, 100)]);
        assert_eq!(report.best(), Some(Best::Clear(&report.points[0])));
        assert_eq!(
            report.best_text().unwrap(),
            "best: p @ m with temperature=0.2 (pass rate 95.0% [88.8–97.8])"
        );
        // 9 of 10 against 8 of 10: ahead, but not shown to be.
        let close = super::SweepReport {
            points: vec![point(0.2, 9, 10), point(0.8, 8, 10)],
            ..report
        };
        assert!(matches!(
            close.best(),
            Some(Best::Unclear {
                contenders: 2,
                tied: 1,
                ..
            })
        ));
        assert_eq!(
            super::SweepReport {
                points: vec![],
                ..close
            }
            .best(),
            None
        );
    }
}
