//! Pairwise comparison of a finished run's columns: for every case and every pair of
//! columns, a judge compares the two outputs in both orders (`prompts/judge-pairwise.yaml`),
//! then the columns are ranked by a Bradley–Terry fit with bootstrap intervals.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::execute::judging::{JudgeRequest, run_judge};
use super::execute::{ExecuteOptions, RunError, RunObserver};
use super::plan::judging::{JudgePlan, resolve_judge};
use super::plan::{PlanError, cache_key};
use super::record::Recording;
use super::{RunPlan, RunResult};
use crate::engine::CancelToken;
use crate::project::Project;
use crate::prompt::Prompt;
use crate::score::judge::{
    DEFAULT_PAIRWISE_CRITERION, PAIRWISE_PROMPT, builtin_pairwise_prompt, pairwise_winner,
    question_of,
};
use crate::score::pairwise::{
    Comparison, Preference, bootstrap_intervals, bradley_terry, win_probability_vs_average,
};

/// Bootstrap resamples for the ranking's intervals.
const RESAMPLES: usize = 2000;

/// A pairwise judge, resolved and checked before anything runs.
#[derive(Debug, Clone)]
pub struct PairwisePlan {
    judging: JudgePlan,
    prompt: Prompt,
    criterion: String,
}

impl PairwisePlan {
    /// `criterion`: what "better" means (the eval set's `pairwise`, or a general default).
    pub fn new(
        project: &Project,
        plan: &RunPlan,
        judge: &str,
        criterion: Option<&str>,
    ) -> Result<PairwisePlan, PlanError> {
        if plan.columns.len() < 2 {
            return Err(PlanError::Invalid {
                path: plan.eval_set.source.clone(),
                message: format!(
                    "--pairwise needs at least two columns (prompts × models) to compare; this run has {}",
                    plan.columns.len()
                ),
            });
        }
        let (model, identity) = resolve_judge(project, &plan.eval_set.source, judge)?;
        let prompt = match project.prompts.select(PAIRWISE_PROMPT).first() {
            Some(p) => (*p).clone(),
            None => builtin_pairwise_prompt()?,
        };
        Ok(PairwisePlan {
            judging: JudgePlan::single(model, identity),
            prompt,
            criterion: criterion.unwrap_or(DEFAULT_PAIRWISE_CRITERION).to_string(),
        })
    }

    pub fn judge(&self) -> &str {
        &self.judging.models[0].name
    }
}

/// Columns `a` and `b` on one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairOutcome {
    pub case: usize,
    pub a: usize,
    pub b: usize,
    /// None when a judge reply could not be read (see `error`).
    pub preference: Option<Preference>,
    /// The judge's reasons with `a` shown first and with `b` shown first.
    pub reasons: [String; 2],
    /// The two orders disagreed, so the pair counts as a tie.
    pub order_disagreed: bool,
    pub error: Option<String>,
}

/// Wins, ties and losses of column `a` against column `b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairTally {
    pub a: usize,
    pub b: usize,
    pub wins_a: usize,
    pub ties: usize,
    pub wins_b: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedColumn {
    pub column: usize,
    pub column_id: String,
    /// Bradley–Terry log-strength (mean 0 across columns) and its 95% interval.
    pub strength: f64,
    pub interval: (f64, f64),
    /// Chance of beating a column of average strength.
    pub win_probability: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairwiseReport {
    pub judge: String,
    pub criterion: String,
    pub outcomes: Vec<PairOutcome>,
    pub tallies: Vec<PairTally>,
    /// Best first.
    pub ranking: Vec<RankedColumn>,
    /// Comparisons whose two orders disagreed (position bias at work).
    pub order_disagreements: usize,
    pub errors: usize,
    pub seconds: f64,
}

struct Pending {
    case: usize,
    a: usize,
    b: usize,
}

/// Judges every pair of columns on every case where both generated, both orders.
pub fn compare_pairwise(
    pairwise: &PairwisePlan,
    result: &RunResult,
    options: &ExecuteOptions,
    observer: &mut dyn RunObserver,
    cancel: &CancelToken,
    recording: &mut Option<Recording<'_>>,
) -> Result<PairwiseReport, RunError> {
    let clock = Instant::now();
    let columns = result.columns.len();
    let mut pending = Vec::new();
    let mut requests = Vec::new();
    for case in 0..result.cases.len() {
        for a in 0..columns {
            for b in (a + 1)..columns {
                let (Some(cell_a), Some(cell_b)) = (result.cell(a, case), result.cell(b, case))
                else {
                    continue;
                };
                if cell_a.error.is_some() || cell_b.error.is_some() {
                    continue;
                }
                let question = result.cases[case]
                    .vars
                    .get("question")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| question_of(&cell_a.prompt));
                for (first, second) in [(cell_a, cell_b), (cell_b, cell_a)] {
                    let vars = serde_json::json!({
                        "question": question,
                        "output_a": first.output,
                        "output_b": second.output,
                        "criterion": pairwise.criterion,
                    });
                    let rendered = pairwise
                        .prompt
                        .render(&minijinja::Value::from_serialize(&vars))
                        .map_err(|e| RunError::Judge(e.to_string()))?;
                    let request = pairwise.judging.request(0, &pairwise.prompt, rendered);
                    requests.push(JudgeRequest {
                        model: 0,
                        key: cache_key(pairwise.judging.identity(0), &request),
                        request,
                    });
                }
                pending.push(Pending { case, a, b });
            }
        }
    }
    if !requests.is_empty() {
        observer.judging(requests.len());
    }
    let replies = run_judge(
        &pairwise.judging,
        &requests,
        options,
        observer,
        cancel,
        recording,
    )?;

    let read = |index: usize| match replies.get(&index) {
        None => Err("not judged: the run stopped first".to_string()),
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(g)) => pairwise_winner(&g.text).map_err(|e| e.to_string()),
    };
    let mut outcomes = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        let (first, second) = (read(2 * i), read(2 * i + 1));
        outcomes.push(match (first, second) {
            (Ok((a_first, reason_a)), Ok((b_first, reason_b))) => {
                let preference = Preference::from_both_orders(a_first, b_first);
                PairOutcome {
                    case: p.case,
                    a: p.a,
                    b: p.b,
                    preference: Some(preference),
                    reasons: [reason_a, reason_b],
                    order_disagreed: !Preference::orders_agree(a_first, b_first),
                    error: None,
                }
            }
            (first, second) => PairOutcome {
                case: p.case,
                a: p.a,
                b: p.b,
                preference: None,
                reasons: [String::new(), String::new()],
                order_disagreed: false,
                error: first.err().or(second.err()),
            },
        });
    }
    Ok(summarize(
        pairwise,
        result,
        outcomes,
        clock.elapsed().as_secs_f64(),
    ))
}

fn summarize(
    pairwise: &PairwisePlan,
    result: &RunResult,
    outcomes: Vec<PairOutcome>,
    seconds: f64,
) -> PairwiseReport {
    let columns = result.columns.len();
    let comparisons: Vec<Comparison> = outcomes
        .iter()
        .filter_map(|o| {
            o.preference.map(|preference| Comparison {
                case: o.case,
                a: o.a,
                b: o.b,
                preference,
            })
        })
        .collect();
    let mut tallies = Vec::new();
    for a in 0..columns {
        for b in (a + 1)..columns {
            let mine = comparisons.iter().filter(|c| c.a == a && c.b == b);
            let count = |p: Preference| mine.clone().filter(|c| c.preference == p).count();
            tallies.push(PairTally {
                a,
                b,
                wins_a: count(Preference::A),
                ties: count(Preference::Tie),
                wins_b: count(Preference::B),
            });
        }
    }
    let strengths = bradley_terry(columns, &comparisons);
    let intervals = bootstrap_intervals(columns, &comparisons, RESAMPLES, 0x5eed);
    let mut ranking: Vec<RankedColumn> = (0..columns)
        .map(|column| RankedColumn {
            column,
            column_id: result.columns[column].id.clone(),
            strength: strengths[column],
            interval: intervals[column],
            win_probability: win_probability_vs_average(strengths[column]),
        })
        .collect();
    ranking.sort_by(|x, y| y.strength.total_cmp(&x.strength));
    PairwiseReport {
        judge: pairwise.judge().to_string(),
        criterion: pairwise.criterion.clone(),
        order_disagreements: outcomes.iter().filter(|o| o.order_disagreed).count(),
        errors: outcomes.iter().filter(|o| o.error.is_some()).count(),
        outcomes,
        tallies,
        ranking,
        seconds,
    }
}

impl PairwiseReport {
    /// The win/tie/loss table and the ranking, for terminals.
    pub fn to_text(&self, result: &RunResult) -> String {
        let mut out = format!(
            "Pairwise comparison by {} ({} comparisons, both orders; {} ties from order disagreements{}) in {:.1} s\n",
            self.judge,
            self.outcomes.len(),
            self.order_disagreements,
            if self.errors > 0 {
                format!(", {} judge errors", self.errors)
            } else {
                String::new()
            },
            self.seconds
        );
        for t in &self.tallies {
            out.push_str(&format!(
                "  {} vs {}: {} wins, {} ties, {} losses\n",
                result.columns[t.a].id, result.columns[t.b].id, t.wins_a, t.ties, t.wins_b
            ));
        }
        out.push_str("Ranking (Bradley–Terry strength, 95% bootstrap interval over cases; P(beats average)):\n");
        for (rank, r) in self.ranking.iter().enumerate() {
            out.push_str(&format!(
                "  {}. {}  {:+.2} [{:+.2}, {:+.2}]  {:.0}%\n",
                rank + 1,
                r.column_id,
                r.strength,
                r.interval.0,
                r.interval.1,
                r.win_probability * 100.0
            ));
        }
        if let [first, second, ..] = &self.ranking[..] {
            let separated = first.interval.0 > second.interval.1;
            out.push_str(&if separated {
                format!(
                    "{} ranks first; its interval does not overlap the runner-up's.\n",
                    first.column_id
                )
            } else {
                format!(
                    "The intervals of {} and {} overlap: these cases do not establish which is better.\n",
                    first.column_id, second.column_id
                )
            });
        }
        out
    }
}
