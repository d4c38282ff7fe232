//! The tuning / held-out split. Candidates are chosen on the tuning part only; the
//! held-out part decides whether the winner is really better. The split is stratified
//! (each label, or each tag, keeps its share in both parts) and fixed by the seed.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::evalset::Case;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Case ids the candidates are tuned on, in eval-set order.
    pub tuning: Vec<String>,
    /// Case ids the final candidates are judged on, in eval-set order.
    pub held_out: Vec<String>,
    /// What the strata were: `expected label`, `tag` or `none`.
    pub stratified_by: String,
    /// Each stratum and its (tuning, held-out) sizes.
    pub strata: BTreeMap<String, (usize, usize)>,
}

/// Splits `cases`: about `fraction` of each stratum goes to tuning, at least one case to
/// each part when the stratum has two or more. `label_of` gives a case's classification
/// label (None when the set is not a classification set or the case has none).
pub fn split_cases(
    cases: &[&Case],
    fraction: f64,
    seed: u64,
    label_of: &dyn Fn(&Case) -> Option<String>,
) -> Split {
    let labelled = cases.iter().all(|c| label_of(c).is_some()) && !cases.is_empty();
    let tagged = cases.iter().any(|c| !c.tags.is_empty());
    let stratified_by = if labelled {
        "expected label"
    } else if tagged {
        "tag"
    } else {
        "none"
    };
    let stratum = |case: &Case| -> String {
        if labelled {
            label_of(case).unwrap_or_default()
        } else if tagged {
            case.tags.first().cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, case) in cases.iter().enumerate() {
        groups.entry(stratum(case)).or_default().push(index);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut in_tuning = vec![false; cases.len()];
    let mut strata = BTreeMap::new();
    for (name, mut members) in groups {
        members.shuffle(&mut rng);
        let n = members.len();
        let mut take = (n as f64 * fraction).round() as usize;
        if n >= 2 {
            take = take.clamp(1, n - 1);
        } else {
            take = take.min(n);
        }
        for &index in &members[..take] {
            in_tuning[index] = true;
        }
        strata.insert(name, (take, n - take));
    }
    let (mut tuning, mut held_out) = (Vec::new(), Vec::new());
    for (index, case) in cases.iter().enumerate() {
        if in_tuning[index] {
            tuning.push(case.id.clone());
        } else {
            held_out.push(case.id.clone());
        }
    }
    Split {
        tuning,
        held_out,
        stratified_by: stratified_by.into(),
        strata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: usize, label: &str) -> Case {
        serde_json::from_value(serde_json::json!({"id": format!("c{id}"), "expected": label}))
            .unwrap()
    }

    fn label(case: &Case) -> Option<String> {
        case.expected
            .as_ref()
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    #[test]
    fn each_label_keeps_its_share_and_the_seed_fixes_the_split() {
        let cases: Vec<Case> = (0..45)
            .map(|i| case(i, ["positive", "negative", "neutral"][i % 3]))
            .collect();
        let refs: Vec<&Case> = cases.iter().collect();
        let split = split_cases(&refs, 0.6, 7, &label);
        assert_eq!(split.stratified_by, "expected label");
        assert_eq!(split.tuning.len() + split.held_out.len(), 45);
        for (tuning, held_out) in split.strata.values() {
            assert_eq!((*tuning, *held_out), (9, 6));
        }
        assert_eq!(split, split_cases(&refs, 0.6, 7, &label));
        assert_ne!(split.tuning, split_cases(&refs, 0.6, 8, &label).tuning);
        let mut all: Vec<&String> = split.tuning.iter().chain(&split.held_out).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 45, "no case in both parts");
    }

    #[test]
    fn a_small_stratum_still_has_a_case_on_each_side() {
        let cases: Vec<Case> = vec![case(0, "a"), case(1, "a"), case(2, "b"), case(3, "b")];
        let refs: Vec<&Case> = cases.iter().collect();
        let split = split_cases(&refs, 0.9, 1, &label);
        assert_eq!(split.strata["a"], (1, 1));
        assert_eq!(split.strata["b"], (1, 1));
    }
}
