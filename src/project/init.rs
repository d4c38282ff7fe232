//! `promptlab init`: writes a small working project (a model entry, a prompt, an eval set)
//! so a new user's first run needs nothing but a model file.

use std::path::{Path, PathBuf};

/// The model the new project's catalog names.
#[derive(Debug, Clone)]
pub struct InitModel {
    /// The catalog name, used by the eval set too.
    pub name: String,
    /// Absolute path of the GGUF file (it may not exist yet).
    pub path: PathBuf,
    /// The command that fetches it, shown while the file is absent.
    pub fetch: Option<String>,
    pub description: String,
}

/// What `init` wrote.
#[derive(Debug)]
pub struct Scaffold {
    pub root: PathBuf,
    /// The files written, relative to `root`.
    pub written: Vec<PathBuf>,
    /// The eval set to run first (its name, as `promptlab eval` takes it).
    pub eval_set: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{0}: already exists; promptlab init never overwrites a file (pick an empty or new folder)"
    )]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const PROMPT: &str = r#"name: capital
description: >-
  Name a country's capital. Change the wording, run the eval set again and compare.
params:
  temperature: 0
  max_tokens: 24
messages:
  - role: user
    content: "What is the capital of {{ country }}?"
"#;

const EVAL_SET: &str = r#"name: capitals
description: Does the prompt get the model to name the capital? One case per country.
prompts: [capital]
models: [MODEL]
defaults:
  assert:
    # Passes when the reply contains the expected city, in any letter case.
    - type: icontains
      value: "{{ expected }}"
cases:
  - {vars: {country: France}, expected: Paris}
  - {vars: {country: Japan}, expected: Tokyo}
  - {vars: {country: Italy}, expected: Rome}
  - {vars: {country: Germany}, expected: Berlin}
  - {vars: {country: Spain}, expected: Madrid}
  - {vars: {country: Egypt}, expected: Cairo}
  - {vars: {country: Canada}, expected: Ottawa}
  - {vars: {country: Australia}, expected: Canberra}
  - {vars: {country: Kenya}, expected: Nairobi}
  - {vars: {country: Peru}, expected: Lima}
"#;

const GITIGNORE: &str = "# promptlab's run store and logs\n.promptlab/\n";

/// Writes the starter project into `root` (created if missing). Refuses before writing
/// anything if one of its files already exists.
pub fn init(root: &Path, model: &InitModel) -> Result<Scaffold, InitError> {
    let files: Vec<(PathBuf, String)> = vec![
        ("models/models.yaml".into(), catalog_text(model)),
        ("prompts/capital.yaml".into(), PROMPT.to_string()),
        (
            "eval-sets/capitals.yaml".into(),
            EVAL_SET.replace("MODEL", &model.name),
        ),
        (".gitignore".into(), GITIGNORE.to_string()),
    ];
    if let Some((existing, _)) = files.iter().find(|(file, _)| root.join(file).exists()) {
        return Err(InitError::Exists(root.join(existing)));
    }
    for (file, text) in &files {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| InitError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| InitError::Io { path, source })?;
    }
    Ok(Scaffold {
        root: root.to_path_buf(),
        written: files.into_iter().map(|(file, _)| file).collect(),
        eval_set: "capitals".to_string(),
    })
}

fn catalog_text(model: &InitModel) -> String {
    let mut text = String::from(
        "# The models this project can run; `promptlab models list` shows whether each is ready.\n\
         # A relative `path` is read from this folder.\nmodels:\n",
    );
    text.push_str(&format!("  {}:\n", model.name));
    text.push_str(&format!(
        "    path: {}\n",
        yaml_string(&model.path.display().to_string())
    ));
    if let Some(fetch) = &model.fetch {
        text.push_str(&format!("    fetch: {}\n", yaml_string(fetch)));
    }
    text.push_str(&format!(
        "    description: {}\n",
        yaml_string(&model.description)
    ));
    text
}

/// A YAML scalar that reads back as exactly `text` (JSON strings are valid YAML).
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// A catalog name from a file name: lower case letters, digits, `-` and `.`.
pub fn model_name_from_file(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        "model".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evalset::EvalSet;
    use crate::project::Project;

    fn model(dir: &Path) -> InitModel {
        InitModel {
            name: "smollm2".into(),
            path: dir.join("weights dir/model: \"odd\".gguf"),
            fetch: Some("bash /x/fetch-models.sh".into()),
            description: "a small chat model".into(),
        }
    }

    #[test]
    fn writes_a_project_that_loads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("demo");
        let model = model(dir.path());
        let scaffold = init(&root, &model).unwrap();
        assert_eq!(scaffold.written.len(), 4);
        let project = Project::open(&root).unwrap();
        assert_eq!(project.prompts.select("capital").len(), 1);
        let entry = project.catalog.resolve("smollm2").unwrap().entry.unwrap();
        // The odd path survives the round trip through YAML.
        assert_eq!(entry.path, model.path);
        assert_eq!(entry.not_fetched(), Some("bash /x/fetch-models.sh"));
        let set = EvalSet::load(&root.join("eval-sets/capitals.yaml")).unwrap();
        assert_eq!(set.cases.len(), 10);
        assert_eq!(set.models, vec!["smollm2".to_string()]);
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
        std::fs::write(dir.path().join("prompts/capital.yaml"), "mine").unwrap();
        let error = init(dir.path(), &model(dir.path())).unwrap_err();
        assert!(
            error.to_string().contains("capital.yaml: already exists"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("prompts/capital.yaml")).unwrap(),
            "mine"
        );
        // Nothing else was written either.
        assert!(!dir.path().join("models").exists());
    }

    #[test]
    fn names_models_after_their_files() {
        assert_eq!(
            model_name_from_file(Path::new("/m/Qwen2.5 Coder_0.5B.Q4_K_M.gguf")),
            "qwen2.5-coder-0.5b.q4-k-m"
        );
        assert_eq!(model_name_from_file(Path::new("/m/__.gguf")), "model");
    }
}
