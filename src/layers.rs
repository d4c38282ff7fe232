//! The library's layers, checked against the code: a module may use modules of its own
//! layer or below, never above, and the modules never import each other in a cycle.
//! `docs/src/dev/architecture.md` shows the same table; a test keeps the two equal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. Every top-level module of the library is in exactly one layer.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation: formats and plain records",
        &[
            "yaml", "params", "template", "dialect", "gguf", "hub", "cancel", "metrics", "trace",
            "script",
        ],
    ),
    (
        "definitions: prompts and the model catalog",
        &["prompt", "catalog"],
    ),
    ("vision models", &["vision"]),
    ("engines", &["engine"]),
    ("scoring", &["score"]),
    (
        "eval sets, projects and the run store",
        &["evalset", "project", "store"],
    ),
    ("the run pipeline", &["run", "compare"]),
    ("workflows on top of runs", &["agent", "results", "sweep"]),
    (
        "starting evaluations, outputs and services",
        &[
            "evaluation",
            "report",
            "serve",
            "promptfoo",
            "bench",
            "failure",
        ],
    ),
    ("searching over evaluations", &["optimize"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The table as `docs/src/dev/architecture.md` shows it, top layer first.
fn markdown_table() -> String {
    let mut table = String::from("| layer | modules |\n|---|---|\n");
    for (name, modules) in LAYERS.iter().rev() {
        let names: Vec<String> = modules.iter().map(|m| format!("`{m}`")).collect();
        table.push_str(&format!("| {name} | {} |\n", names.join(", ")));
    }
    table
}

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Top-level library module → the other top-level modules its code (tests and comments
/// left out) names through `crate::`.
fn imports() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let path_pattern = regex::Regex::new(r"crate::([a-z_]+)").expect("valid pattern");
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        // The binary's modules (cli, tui) use the library as `promptlab::`.
        let in_library = layer_of(&module).is_some();
        let is_test_file = relative.components().any(|c| c.as_os_str() == "tests");
        if !in_library || is_test_file {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for found in path_pattern.captures_iter(line) {
                let used = &found[1];
                if used != module {
                    graph
                        .entry(module.clone())
                        .or_default()
                        .entry(used.to_string())
                        .or_default()
                        .insert(relative.display().to_string());
                }
            }
        }
    }
    graph
}

#[test]
fn every_library_module_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 20, "{declared:?}");
    for module in declared {
        assert!(
            layer_of(module).is_some(),
            "`{module}` is in no layer: add it to LAYERS in src/layers.rs and to docs/src/dev/architecture.md"
        );
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let mut upward = Vec::new();
    for (module, uses) in imports() {
        let own = layer_of(&module).expect("library module");
        for (used, files) in uses {
            match layer_of(&used) {
                Some(layer) if layer > own => upward.push(format!(
                    "{module} (layer {own}) uses {used} (layer {layer}) in {files:?}"
                )),
                Some(_) => {}
                None => upward.push(format!(
                    "{module} uses `crate::{used}`, which is in no layer"
                )),
            }
        }
    }
    assert!(upward.is_empty(), "imports upward:\n{}", upward.join("\n"));
}

#[test]
fn modules_never_import_each_other_in_a_cycle() {
    let graph = imports();
    // Depth-first search; a grey module met again closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        state: &mut BTreeMap<String, bool>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(module) {
            Some(true) => {
                let start = path.iter().position(|m| m == module).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(module.to_string());
                return Some(cycle);
            }
            Some(false) => return None,
            None => {}
        }
        state.insert(module.to_string(), true);
        path.push(module.to_string());
        for used in graph.get(module).map(|u| u.keys()).into_iter().flatten() {
            if let Some(cycle) = visit(used, graph, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(module.to_string(), false);
        None
    }
    let mut state = BTreeMap::new();
    for module in graph.keys() {
        let cycle = visit(module, &graph, &mut state, &mut Vec::new());
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" → ")
        );
    }
}

/// Planning a run never reaches into its execution (execution uses the plan).
#[test]
fn run_planning_does_not_import_execution() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/run");
    let mut files = vec![dir.join("plan.rs")];
    source_files(&dir.join("plan"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        assert!(
            !text.contains("execute::"),
            "{} imports from run::execute",
            file.display()
        );
    }
}

#[test]
fn the_architecture_page_shows_these_layers() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/dev/architecture.md");
    let text = std::fs::read_to_string(&page).expect("docs/src/dev/architecture.md");
    let table = markdown_table();
    assert!(
        text.contains(&table),
        "docs/src/dev/architecture.md does not show the layers of src/layers.rs; expected the table:\n{table}"
    );
}
