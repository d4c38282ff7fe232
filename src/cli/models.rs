//! `promptlab models list|pull|add|rm`: the catalog with facts read from each GGUF
//! header, and adding models to it from the Hugging Face hub or from a local file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use comfy_table::CellAlignment;
use promptlab::gguf::GgufInfo;
use promptlab::project::Project;

use super::Outcome;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List catalog models: architecture, parameters, quantization, context, chat template, size.
    List {
        /// Project folder (default: found from the current folder).
        #[arg(long)]
        project: Option<PathBuf>,
    },
    /// Download a GGUF from a Hugging Face repo (resumable, checksum-verified) into the hub
    /// cache and add it to the catalog. A file already in the cache is used without the
    /// network; with HF_HUB_OFFLINE=1 only the cache is looked at.
    Pull {
        /// Repo id, e.g. `Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF`.
        repo: String,
        /// File in the repo (default: its only GGUF, or its Q4_K_M one).
        file: Option<String>,
        /// Catalog name (default: from the file name).
        #[arg(long)]
        name: Option<String>,
        /// Branch, tag or commit (default: main).
        #[arg(long)]
        revision: Option<String>,
        #[arg(long)]
        project: Option<PathBuf>,
    },
    /// Add a local GGUF file to the catalog (its header is checked first).
    Add {
        path: PathBuf,
        /// Catalog name (default: from the file name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        project: Option<PathBuf>,
    },
    /// Remove a model from the catalog (its file is left where it is).
    Rm {
        name: String,
        #[arg(long)]
        project: Option<PathBuf>,
    },
}

pub fn run(command: ModelsCommand) -> Result<Outcome> {
    let project = match command {
        ModelsCommand::List { project } => project,
        ModelsCommand::Pull {
            repo,
            file,
            name,
            revision,
            project,
        } => return pull(&repo, file, name, revision, project),
        ModelsCommand::Add {
            path,
            name,
            project,
        } => return add(&path, name, project),
        ModelsCommand::Rm { name, project } => return remove(&name, project),
    };
    let start = project.unwrap_or_else(|| PathBuf::from("."));
    let project = Project::discover(&start).context("cannot open the project")?;
    let mut table = crate::cli::table_style().table();
    table.set_header([
        "name",
        "architecture",
        "params",
        "quant",
        "context",
        "chat template",
        "size",
        "runs on",
        "file",
    ]);
    let mut problems = Vec::new();
    for (name, entry) in &project.catalog.models {
        if entry.kind() == promptlab::catalog::ModelKind::DigitCnn {
            let (arch, params) = if !entry.path.is_file() {
                // Not trained yet is a normal state, not a broken file.
                (
                    "digit CNN, not trained yet (promptlab vision digits train)".to_string(),
                    String::new(),
                )
            } else {
                match promptlab::vision::train::DigitClassifier::load(&entry.path) {
                    Ok(model) => (
                        format!("digit CNN ({})", model.card.config.preset),
                        human_count(model.card.parameters as u64),
                    ),
                    Err(err) => {
                        problems.push(format!(
                            "{err} (train it again with `promptlab vision digits train -o {}`)",
                            entry.path.display()
                        ));
                        ("digit CNN, unreadable".to_string(), String::new())
                    }
                }
            };
            table.add_row([
                name.clone(),
                arch,
                params,
                "f32".into(),
                String::new(),
                "no".into(),
                std::fs::metadata(&entry.path)
                    .map(|m| human_bytes(m.len()))
                    .unwrap_or_default(),
                "CPU".into(),
                entry.path.display().to_string(),
            ]);
            continue;
        }
        // Absent but fetchable is a normal state (a fresh clone), not a broken file.
        if let Some(command) = entry.not_fetched() {
            table.add_row([
                name.clone(),
                format!("not fetched: {command}"),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                entry.path.display().to_string(),
            ]);
            continue;
        }
        // Folders of weights without a GGUF header to read: named and located only.
        let folder_kind = match entry.kind() {
            promptlab::catalog::ModelKind::Embedding => {
                Some("sentence embeddings (`similar` assertion)")
            }
            promptlab::catalog::ModelKind::Clip => Some("CLIP (agent tool classify_image)"),
            _ => None,
        };
        if let Some(kind) = folder_kind {
            table.add_row([
                name.clone(),
                kind.into(),
                String::new(),
                String::new(),
                String::new(),
                "no".into(),
                String::new(),
                "CPU".into(),
                entry.path.display().to_string(),
            ]);
            continue;
        }
        if let Some(remote) = entry.servers() {
            let urls: Vec<&str> = remote.endpoints.iter().map(|e| e.url()).collect();
            table.add_row([
                name.clone(),
                format!("remote `{}` (OpenAI API)", remote.model),
                String::new(),
                String::new(),
                String::new(),
                "server's".into(),
                String::new(),
                "its servers".into(),
                urls.join(" "),
            ]);
            continue;
        }
        if entry.kind() == promptlab::catalog::ModelKind::YoloDetector {
            let size = std::fs::metadata(&entry.path).map(|m| human_bytes(m.len()));
            if size.is_err() {
                problems.push(format!(
                    "{}: detector not found (scripts/fetch-vision.sh fetches the sample one)",
                    entry.path.display()
                ));
            }
            table.add_row([
                name.clone(),
                "YOLO detector (ONNX)".into(),
                String::new(),
                String::new(),
                String::new(),
                "no".into(),
                size.unwrap_or_default(),
                "CPU".into(),
                entry.path.display().to_string(),
            ]);
            continue;
        }
        match GgufInfo::read(&entry.path) {
            Ok(info) => {
                table.add_row([
                    name.clone(),
                    info.architecture().unwrap_or("?").to_string(),
                    human_count(info.parameter_count),
                    info.quantization(),
                    info.context_length()
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "?".into()),
                    if info.chat_template().is_some() {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                    human_bytes(info.file_size),
                    runs_on(name, entry, info.block_count(), &mut problems),
                    entry.path.display().to_string(),
                ]);
            }
            Err(err) => {
                table.add_row([
                    name.clone(),
                    "unreadable".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    entry.path.display().to_string(),
                ]);
                problems.push(err.to_string());
            }
        }
    }
    for column in [2, 4, 6] {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let text = if project.catalog.models.is_empty() {
        format!(
            "No models in {} (only the built-in `echo` engine is available).\n",
            project.root.join("models/models.yaml").display()
        )
    } else {
        format!("{table}\n")
    };
    let uses_llama = project
        .catalog
        .models
        .values()
        .any(|entry| entry.runs_on_llama_cpp() && entry.not_fetched().is_none());
    let text = if uses_llama {
        format!("{text}{}\n", devices_line())
    } else {
        text
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
    if problems.is_empty() {
        Ok(Outcome::Passed)
    } else {
        for problem in &problems {
            eprintln!("error: {problem}");
        }
        anyhow::bail!("{} model(s) cannot be used as they are", problems.len())
    }
}

fn catalog_path(project: Option<PathBuf>) -> Result<PathBuf> {
    let start = project.unwrap_or_else(|| PathBuf::from("."));
    let project = Project::discover(&start).context("cannot open the project")?;
    Ok(project.root.join("models").join("models.yaml"))
}

/// A catalog name from a file name: `Qwen2.5-0.5B-Instruct-Q4_K_M.gguf` → `qwen2.5-0.5b-instruct-q4_k_m`.
fn name_from_file(file: &str) -> String {
    let stem = std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    stem.chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// What the GGUF header says, for the catalog's description.
fn describe(path: &std::path::Path) -> Result<(String, GgufInfo)> {
    let info = GgufInfo::read(path)
        .with_context(|| format!("{} is not a readable GGUF model", path.display()))?;
    let description = format!(
        "{} {}, {}{}",
        info.architecture().unwrap_or("?"),
        human_count(info.parameter_count),
        info.quantization(),
        if info.chat_template().is_some() {
            ", chat template"
        } else {
            ", no chat template"
        }
    );
    Ok((description, info))
}

fn pull(
    repo: &str,
    file: Option<String>,
    name: Option<String>,
    revision: Option<String>,
    project: Option<PathBuf>,
) -> Result<Outcome> {
    let catalog = catalog_path(project)?;
    let was_cached = file
        .as_deref()
        .and_then(|f| promptlab::hub::cached(repo, f, revision.as_deref()))
        .is_some();
    let path = promptlab::hub::pull(repo, file.as_deref(), revision.as_deref())?;
    promptlab::hub::verify(&path)?;
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = file.unwrap_or(file_name);
    let (description, _) = describe(&path)?;
    let name = name.unwrap_or_else(|| name_from_file(&file));
    let mut hub = serde_json::json!({"repo": repo, "file": file});
    if let Some(revision) = &revision {
        hub["revision"] = serde_json::json!(revision);
    }
    promptlab::catalog::add_entry(
        &catalog,
        &name,
        &serde_json::json!({"hub": hub, "description": format!("{description} (from {repo})")}),
    )?;
    let source = if was_cached || promptlab::hub::offline() {
        "from the local hub cache"
    } else {
        "downloaded"
    };
    println!(
        "added `{name}` to {}: {description}, {source} ({})",
        catalog.display(),
        path.display()
    );
    Ok(Outcome::Passed)
}

fn add(path: &std::path::Path, name: Option<String>, project: Option<PathBuf>) -> Result<Outcome> {
    let catalog = catalog_path(project)?;
    let (description, _) = describe(path)?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let name = name.unwrap_or_else(|| {
        name_from_file(
            &absolute
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        )
    });
    // Inside the catalog's folder a relative path keeps the project movable.
    let models_dir = catalog
        .parent()
        .map(std::path::absolute)
        .and_then(Result::ok);
    let stored = models_dir
        .as_ref()
        .and_then(|dir| absolute.strip_prefix(dir).ok())
        .map_or_else(|| absolute.clone(), std::path::Path::to_path_buf);
    promptlab::catalog::add_entry(
        &catalog,
        &name,
        &serde_json::json!({"path": stored.display().to_string(), "description": description}),
    )?;
    println!("added `{name}` to {}: {description}", catalog.display());
    Ok(Outcome::Passed)
}

fn remove(name: &str, project: Option<PathBuf>) -> Result<Outcome> {
    let catalog = catalog_path(project)?;
    let loaded = promptlab::catalog::ModelCatalog::load(&catalog)?;
    let file = loaded.models.get(name).map(|e| e.path.clone());
    promptlab::catalog::remove_entry(&catalog, name)?;
    match file.filter(|f| !f.as_os_str().is_empty()) {
        Some(file) => println!(
            "removed `{name}` from {}; its file stays at {}",
            catalog.display(),
            file.display()
        ),
        None => println!("removed `{name}` from {}", catalog.display()),
    }
    Ok(Outcome::Passed)
}

fn human_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// What llama.cpp can run models on here: the CPU's instruction set, the GPU backends this
/// build has, and the GPUs they found.
fn devices_line() -> String {
    use promptlab::engine::llama::device;
    let cpu = match device::cpu_features() {
        Some(simd) => format!("CPU ({simd})"),
        None => "CPU".to_string(),
    };
    let built = device::gpu_backends_built();
    let built = if built.is_empty() && cfg!(feature = "dynamic-backends") {
        "loaded at run time".to_string()
    } else if built.is_empty() {
        "none (docs/src/gpu.md says how to build with one)".to_string()
    } else {
        built.join(", ")
    };
    let gpus: Vec<String> = device::devices()
        .map(|devices| {
            devices
                .iter()
                .filter(|d| {
                    matches!(
                        d.kind,
                        device::DeviceKind::Gpu | device::DeviceKind::IntegratedGpu
                    )
                })
                .map(device::Device::label)
                .collect()
        })
        .unwrap_or_default();
    let found = if gpus.is_empty() {
        "none, so models run on the CPU".to_string()
    } else {
        gpus.join(", ")
    };
    format!("llama.cpp: {cpu} · GPU backends in this build: {built} · GPUs found: {found}")
}

/// Where a GGUF model will run: llama.cpp's plan for it, or mistral.rs's; a plan that
/// cannot work (a device llama.cpp does not find) goes to `problems`.
fn runs_on(
    name: &str,
    entry: &promptlab::catalog::ModelEntry,
    layers: Option<u64>,
    problems: &mut Vec<String>,
) -> String {
    match promptlab::engine::llama::device::planned_placement(entry, layers) {
        Some(Ok(placement)) => return placement,
        Some(Err(err)) => {
            problems.push(format!("model `{name}` {err}"));
            return "unknown device".into();
        }
        None => {}
    }
    let offloads = entry
        .local()
        .is_some_and(|l| l.gpu_layers.unwrap_or_default().offloads());
    if offloads && (cfg!(feature = "cuda") || cfg!(feature = "metal")) {
        "GPU (mistral.rs)".into()
    } else {
        "CPU (mistral.rs)".into()
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
        n => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
    }
}
