//! promptfoo configs (tests/promptfoo) run with promptfoo's verdicts: each folder's
//! `expected.json` was recorded from promptfoo 0.118 by scripts/promptfoo-compare.py
//! (echo provider), and every test and assertion verdict of promptlab's run must match it.

use std::path::Path;

use serde_json::Value;

use crate::common::{TempProject, copy_dir, promptlab, text};

/// (test, column) → (passed, assertion verdicts), from either side.
type Verdicts = std::collections::BTreeMap<(u64, u64), (bool, Vec<bool>)>;

fn expected(folder: &Path) -> Verdicts {
    let fixture = std::fs::read_to_string(folder.join("expected.json")).unwrap();
    let fixture: Value = serde_json::from_str(&fixture).unwrap();
    fixture["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let verdicts = c["assertions"].as_array().unwrap();
            (
                (c["test"].as_u64().unwrap(), c["column"].as_u64().unwrap()),
                (
                    c["pass"].as_bool().unwrap(),
                    verdicts.iter().map(|v| v.as_bool().unwrap()).collect(),
                ),
            )
        })
        .collect()
}

fn promptlab_verdicts(folder: &Path) -> Result<Verdicts, String> {
    let project = TempProject::new();
    let copy = project.root().join(folder.file_name().unwrap());
    copy_dir(folder, &copy);
    let report = project.root().join("report.json");
    let config = copy.join("promptfooconfig.yaml");
    let out = promptlab(
        &[
            "eval",
            config.to_str().unwrap(),
            "-o",
            report.to_str().unwrap(),
        ],
        project.root(),
    );
    let report = std::fs::read_to_string(&report).map_err(|_| text(&out))?;
    let report: Value = serde_json::from_str(&report).unwrap();
    Ok(report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let verdicts = c["assertions"].as_array().unwrap();
            (
                (c["case"].as_u64().unwrap(), c["column"].as_u64().unwrap()),
                (
                    c["passed"].as_bool().unwrap(),
                    verdicts
                        .iter()
                        .map(|v| v["passed"].as_bool().unwrap())
                        .collect(),
                ),
            )
        })
        .collect())
}

/// Configs promptlab refuses for a feature it lacks, and the feature the refusal names.
const REFUSED: &[(&str, &str)] = &[];

#[test]
fn promptfoo_configs_get_promptfoos_verdicts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promptfoo");
    let mut folders: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.json").exists())
        .collect();
    folders.sort();
    assert!(folders.len() >= 15, "{folders:?}");
    let (mut tests, mut assertions) = (0, 0);
    let mut differences = Vec::new();
    for folder in &folders {
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let want = expected(folder);
        if let Some((_, feature)) = REFUSED.iter().find(|(n, _)| *n == name) {
            match promptlab_verdicts(folder) {
                Err(message) if message.contains(feature) => {}
                other => differences.push(format!("{name}: not refused for {feature}: {other:?}")),
            }
            continue;
        }
        let got = match promptlab_verdicts(folder) {
            Ok(got) => got,
            Err(message) => {
                differences.push(format!("{name}: refused: {message}"));
                continue;
            }
        };
        for (key, (pass, verdicts)) in &want {
            tests += 1;
            assertions += verdicts.len();
            match got.get(key) {
                None => differences.push(format!("{name} {key:?}: no such cell")),
                // promptfoo stopped the test with an error (e.g. `perplexity` on a provider
                // without log-probabilities) and gave no assertion verdicts: only the test's
                // failure is compared.
                Some((p, _)) if verdicts.is_empty() && !pass => {
                    if *p {
                        differences.push(format!(
                            "{name} {key:?}: promptfoo failed it with an error, promptlab passed it"
                        ));
                    }
                }
                Some((p, v)) if (p, v) != (pass, verdicts) => differences.push(format!(
                    "{name} {key:?}: promptfoo {pass} {verdicts:?}, promptlab {p} {v:?}"
                )),
                Some(_) => {}
            }
        }
        let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(k)).collect();
        if !extra.is_empty() {
            differences.push(format!("{name}: cells promptfoo does not have: {extra:?}"));
        }
    }
    assert!(tests >= 50 && assertions >= 100, "{tests} {assertions}");
    assert!(
        differences.is_empty(),
        "{} differences from promptfoo:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
