//! A stored run as a cases × columns matrix, with the filters and orderings a results
//! view needs (failures only, one tag, cases where the columns disagree; by score or
//! latency). Built from the run store alone, so a run finished a second ago and one from
//! last week look the same, and so does a run that was interrupted halfway.

use std::collections::HashMap;
use std::path::Path;

use crate::evalset::EvalSet;
use crate::score::assertion::AssertionOutcome;
use crate::store::{RunRow, RunStore, StoreError, StoredCell};

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixCase {
    pub id: String,
    /// From the eval set file as it is now (runs store case ids, not tags); empty when the
    /// file is gone or no longer parses.
    pub tags: Vec<String>,
    /// Its description or first variable, from the eval set file as it is now; empty when
    /// that is gone (or an agent set, whose questions the trace holds).
    pub label: String,
    /// The image file its variables name (a vision case), from the eval set as it is now.
    pub picture: Option<std::path::PathBuf>,
    /// Its expected value, from the eval set as it is now (a vision case's boxes).
    pub expected: Option<serde_json::Value>,
}

/// Pass counts and means over one column's recorded cells.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ColumnStats {
    pub recorded: usize,
    pub passed: usize,
    pub cached: usize,
    pub mean_score: f64,
    pub mean_latency_ms: f64,
}

impl ColumnStats {
    pub fn pass_rate(&self) -> Option<f64> {
        (self.recorded > 0).then(|| self.passed as f64 / self.recorded as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RowFilter {
    #[default]
    All,
    /// Cases with at least one failing cell.
    Failures,
    /// Cases where some column passed and another failed.
    Disagreements,
    Tag(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowOrder {
    /// As in the eval set.
    #[default]
    Case,
    /// Lowest mean score first.
    Score,
    /// Slowest first.
    Latency,
}

#[derive(Debug, Clone)]
pub struct RunMatrix {
    pub run: RunRow,
    /// Column ids (`prompt @ model`) in column order.
    pub columns: Vec<String>,
    pub cases: Vec<MatrixCase>,
    /// Row-major: `cells[case * columns.len() + column]`.
    cells: Vec<Option<StoredCell>>,
    /// The judge's pairwise ranking of the columns, when the run has one.
    pub pairwise: Option<crate::run::PairwiseReport>,
}

impl RunMatrix {
    /// The run with its recorded cells, or None when the store has no such run.
    pub fn load(store: &RunStore, run_id: i64) -> Result<Option<RunMatrix>, StoreError> {
        let Some(run) = store.run(run_id)? else {
            return Ok(None);
        };
        let cells = store.cells(run_id)?;
        let eval_set = EvalSet::load(Path::new(&run.eval_set_path)).ok();
        let tags = case_tags(eval_set.as_ref());
        let mut matrix = RunMatrix::from_cells(run, cells, &tags);
        if let Some(eval_set) = &eval_set {
            for case in &mut matrix.cases {
                if let Some(found) = eval_set.cases.iter().find(|c| c.id == case.id) {
                    case.label = found.label();
                    case.picture = crate::evalset::image_in_vars(&eval_set.source, &found.vars);
                    case.expected.clone_from(&found.expected);
                }
            }
        }
        // A ranking written by another version that no longer reads is left out, not fatal.
        matrix.pairwise = store
            .pairwise_json(run_id)?
            .and_then(|json| serde_json::from_str(&json).ok());
        Ok(Some(matrix))
    }

    pub fn from_cells(
        run: RunRow,
        cells: Vec<StoredCell>,
        tags: &HashMap<String, Vec<String>>,
    ) -> RunMatrix {
        let column_count = cells.iter().map(|c| c.column_index + 1).max().unwrap_or(0);
        let case_count = cells.iter().map(|c| c.case_index + 1).max().unwrap_or(0);
        let mut columns = vec![String::new(); column_count];
        let mut cases: Vec<MatrixCase> = (0..case_count)
            .map(|_| MatrixCase {
                id: String::new(),
                tags: Vec::new(),
                label: String::new(),
                picture: None,
                expected: None,
            })
            .collect();
        let mut grid: Vec<Option<StoredCell>> = vec![None; column_count * case_count];
        for cell in cells {
            columns[cell.column_index].clone_from(&cell.column_id);
            let case = &mut cases[cell.case_index];
            if case.id.is_empty() {
                case.id.clone_from(&cell.case_id);
                case.tags = tags.get(&cell.case_id).cloned().unwrap_or_default();
            }
            let at = cell.case_index * column_count + cell.column_index;
            grid[at] = Some(cell);
        }
        RunMatrix {
            run,
            columns,
            cases,
            cells: grid,
            pairwise: None,
        }
    }

    pub fn cell(&self, case: usize, column: usize) -> Option<&StoredCell> {
        if column >= self.columns.len() {
            return None;
        }
        self.cells
            .get(case * self.columns.len() + column)
            .and_then(Option::as_ref)
    }

    fn row(&self, case: usize) -> impl Iterator<Item = &StoredCell> {
        (0..self.columns.len()).filter_map(move |column| self.cell(case, column))
    }

    pub fn column_stats(&self, column: usize) -> ColumnStats {
        let cells: Vec<&StoredCell> = (0..self.cases.len())
            .filter_map(|case| self.cell(case, column))
            .collect();
        let n = cells.len();
        let mean = |f: fn(&StoredCell) -> f64| {
            if n == 0 {
                0.0
            } else {
                cells.iter().map(|c| f(c)).sum::<f64>() / n as f64
            }
        };
        ColumnStats {
            recorded: n,
            passed: cells.iter().filter(|c| c.passed).count(),
            cached: cells.iter().filter(|c| c.cached).count(),
            mean_score: mean(|c| c.score),
            mean_latency_ms: mean(|c| c.latency_ms),
        }
    }

    pub fn has_failure(&self, case: usize) -> bool {
        self.row(case).any(|c| !c.passed)
    }

    pub fn columns_disagree(&self, case: usize) -> bool {
        let mut row = self.row(case);
        match row.next() {
            Some(first) => row.any(|c| c.passed != first.passed),
            None => false,
        }
    }

    /// Every tag of the shown cases, sorted, for a tag filter to cycle through.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.cases.iter().flat_map(|c| c.tags.clone()).collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// Case indices that pass `filter`, in `order`.
    pub fn rows(&self, filter: &RowFilter, order: RowOrder) -> Vec<usize> {
        let mut rows: Vec<usize> = (0..self.cases.len())
            .filter(|&case| match filter {
                RowFilter::All => true,
                RowFilter::Failures => self.has_failure(case),
                RowFilter::Disagreements => self.columns_disagree(case),
                RowFilter::Tag(tag) => self.cases[case].tags.iter().any(|t| t == tag),
            })
            .collect();
        let mean = |case: usize, f: fn(&StoredCell) -> f64| {
            let values: Vec<f64> = self.row(case).map(f).collect();
            if values.is_empty() {
                f64::NAN
            } else {
                values.iter().sum::<f64>() / values.len() as f64
            }
        };
        match order {
            RowOrder::Case => {}
            RowOrder::Score => {
                rows.sort_by(|&a, &b| mean(a, |c| c.score).total_cmp(&mean(b, |c| c.score)))
            }
            RowOrder::Latency => rows
                .sort_by(|&a, &b| mean(b, |c| c.latency_ms).total_cmp(&mean(a, |c| c.latency_ms))),
        }
        rows
    }
}

/// The assertion results recorded with a cell (empty when they do not parse, which only
/// a hand-edited database would cause).
pub fn assertions(cell: &StoredCell) -> Vec<AssertionOutcome> {
    serde_json::from_str(&cell.assertions_json).unwrap_or_default()
}

fn case_tags(eval_set: Option<&EvalSet>) -> HashMap<String, Vec<String>> {
    let Some(eval_set) = eval_set else {
        return HashMap::new();
    };
    eval_set
        .cases
        .iter()
        .map(|case| (case.id.clone(), case.tags.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
