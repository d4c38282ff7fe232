//! promptfoo's `providers` (or `targets`) as promptlab models: `echo`; catalog names;
//! `llama:NAME`, `ollama:[chat:|completion:]NAME` and `openai:[chat:|completion:]NAME`,
//! each a catalog model when NAME is one (and no `apiBaseUrl` says otherwise), else the
//! OpenAI-compatible server it names (the provider's default address when none is given).
//! A provider's `config` sampling settings become the column's parameters.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::{PromptfooError, Reader};
use crate::catalog::remote::RemoteSettings;
use crate::catalog::{ECHO_MODEL, KindSettings, ModelCatalog, ModelEntry};
use crate::params::GenerationParams;

pub(super) struct Providers {
    /// Column model names, in order.
    pub columns: Vec<String>,
    /// Providers that run only some prompts (by label): `prompts:` on the provider.
    pub prompts: Vec<(String, Vec<String>)>,
    /// Entries to add to the catalog for them.
    pub entries: Vec<(String, ModelEntry)>,
}

pub(super) struct Resolved {
    pub name: String,
    pub entry: Option<(String, ModelEntry)>,
}

pub(super) fn read(
    reader: &mut Reader,
    value: &Value,
    catalog: &ModelCatalog,
) -> Result<Providers, PromptfooError> {
    let items: Vec<Value> = match value {
        Value::Array(items) => items.clone(),
        Value::String(_) | Value::Object(_) => vec![value.clone()],
        _ => return Err(reader.invalid("`providers`: expected a list")),
    };
    let mut providers = Providers {
        columns: Vec::new(),
        prompts: Vec::new(),
        entries: Vec::new(),
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("providers[{i}]");
        let Some(resolved) = resolve(reader, item, catalog, &at)? else {
            continue;
        };
        if providers.columns.contains(&resolved.name) {
            return Err(reader.invalid(format!(
                "{at}: a second provider named `{}`: give one a different `label`",
                resolved.name
            )));
        }
        if let Some(Value::Array(labels)) = item.get("prompts") {
            let labels = labels
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            providers.prompts.push((resolved.name.clone(), labels));
        }
        providers.columns.push(resolved.name);
        providers.entries.extend(resolved.entry);
    }
    if providers.columns.is_empty() && reader.unsupported.is_empty() {
        return Err(reader.invalid("`providers` is empty"));
    }
    Ok(providers)
}

/// The grader named by `defaultTest.options.provider`.
pub(super) fn judge(
    reader: &mut Reader,
    value: &Value,
    catalog: &ModelCatalog,
) -> Result<Resolved, PromptfooError> {
    let at = "defaultTest.options.provider";
    resolve(reader, value, catalog, at)?
        .ok_or_else(|| reader.invalid(format!("{at}: cannot be used as a judge")))
}

/// One provider: `"id"`, `{id, label, config}`, or `{"id": {label, config}}`.
fn resolve(
    reader: &mut Reader,
    item: &Value,
    catalog: &ModelCatalog,
    at: &str,
) -> Result<Option<Resolved>, PromptfooError> {
    let (id, fields) = match item {
        Value::String(id) => (id.clone(), Map::new()),
        Value::Object(object) if object.contains_key("id") => {
            let id = object
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| reader.invalid(format!("{at}.id: expected a string")))?;
            (id.to_string(), object.clone())
        }
        Value::Object(object) if object.len() == 1 => {
            let (id, fields) = object
                .iter()
                .next()
                .map(|(k, v)| (k.clone(), v.clone()))
                .unwrap_or_default();
            let fields = match fields {
                Value::Object(fields) => fields,
                _ => Map::new(),
            };
            (id, fields)
        }
        _ => {
            return Err(reader.invalid(format!(
                "{at}: expected a provider id or an object with `id`"
            )));
        }
    };
    for key in fields.keys() {
        if !["id", "label", "config", "prompts"].contains(&key.as_str()) {
            reader.unsupported(format!("{at}: provider field `{key}`"));
        }
    }
    let label = fields.get("label").and_then(Value::as_str);
    let empty = Map::new();
    let config = match fields.get("config") {
        None => &empty,
        Some(Value::Object(config)) => config,
        Some(_) => return Err(reader.invalid(format!("{at}.config: expected an object"))),
    };
    let name = label.unwrap_or(&id).to_string();
    if id == ECHO_MODEL {
        // A labelled echo is a column of its own, named by its label.
        if name != ECHO_MODEL {
            reader.echoes.push(name.clone());
        }
        return Ok(Some(Resolved { name, entry: None }));
    }
    let (params, schema) = params(reader, config, &format!("{at}.config"))?;
    if schema.is_some() {
        reader.unsupported(format!(
            "{at}: `response_format` on a provider (promptlab takes it on the prompt's `config`)"
        ));
    }
    let api_base = config
        .get("apiBaseUrl")
        .or_else(|| config.get("baseUrl"))
        .or_else(|| config.get("apiHost"))
        .and_then(Value::as_str)
        .map(|base| {
            if base.starts_with("http") {
                base.to_string()
            } else {
                format!("https://{base}/v1")
            }
        });
    let key_env = config
        .get("apiKeyEnvar")
        .and_then(Value::as_str)
        .map(str::to_string);
    // (family, model name, default server, its key variable)
    let (family, model) = match id.split_once(':') {
        // promptfoo's llama.cpp provider: the server runs one model, named by nothing.
        None if id == "llama" => ("llama", "llama"),
        None => ("", id.as_str()),
        Some((family, rest)) => {
            let model = rest
                .strip_prefix("chat:")
                .or_else(|| rest.strip_prefix("completion:"))
                .unwrap_or(rest);
            (family, model)
        }
    };
    let local = catalog.models.get(model).filter(|_| api_base.is_none());
    let tools = match config.get("tools") {
        None => Vec::new(),
        Some(value) => match inline_or_file(reader, value, &format!("{at}.config.tools"))? {
            Value::Array(tools) => tools,
            other => {
                return Err(reader.invalid(format!(
                    "{at}.config.tools: expected a list of OpenAI tools, got {other}"
                )));
            }
        },
    };
    if local.is_some() && (!tools.is_empty() || config.contains_key("tool_choice")) {
        reader.unsupported(format!(
            "{at}.config.tools on a local catalog model (promptlab offers tools to OpenAI-compatible providers; serve the model with `promptlab serve` and point an `openai:` provider at it)"
        ));
    }
    if let Some(entry) = local {
        let changed = params != GenerationParams::default();
        if name == model && !changed {
            return Ok(Some(Resolved { name, entry: None }));
        }
        let mut entry = entry.clone();
        if let Some(own) = entry.params_mut() {
            *own = own.overlay(&params);
        }
        return Ok(Some(Resolved {
            name: name.clone(),
            entry: Some((name, entry)),
        }));
    }
    let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let (server, default_key, extensions) = match family {
        "llama" => (
            env("LLAMA_BASE_URL").unwrap_or_else(|| "http://localhost:8080".into()),
            None,
            true,
        ),
        "ollama" => (
            env("OLLAMA_BASE_URL").unwrap_or_else(|| "http://localhost:11434".into()),
            None,
            true,
        ),
        "openai" => (
            env("OPENAI_BASE_URL")
                .or_else(|| env("OPENAI_API_BASE_URL"))
                .unwrap_or_else(|| "https://api.openai.com/v1".into()),
            Some("OPENAI_API_KEY".to_string()),
            false,
        ),
        "" => {
            return Err(reader.invalid(format!(
                "{at}: `{id}` is neither a promptfoo provider id nor a model of {}",
                catalog.source.as_ref().map_or_else(
                    || "the catalog (none found)".into(),
                    |p| p.display().to_string()
                )
            )));
        }
        _ => {
            reader.unsupported(format!(
                "{at}: provider `{id}` (promptlab runs echo, llama:, ollama:, openai: and catalog models)"
            ));
            return Ok(None);
        }
    };
    if config.contains_key("apiKey") {
        reader.unsupported(format!(
            "{at}: a literal `apiKey` (put the key in an environment variable and name it with `apiKeyEnvar`)"
        ));
    }
    let mut base = api_base.unwrap_or(server);
    if family != "openai" && !base.trim_end_matches('/').ends_with("/v1") {
        base = format!("{}/v1", base.trim_end_matches('/'));
    }
    let mut remote = RemoteSettings::single(model, &base);
    remote.sampling_extensions = extensions;
    remote.api_key_env = key_env.or(default_key.filter(|k| env(k).is_some()));
    remote.tools = tools;
    remote.tool_choice = config.get("tool_choice").cloned();
    let mut entry = ModelEntry::new(
        PathBuf::new(),
        KindSettings::Openai {
            servers: remote,
            params,
        },
    );
    entry.description = format!("promptfoo provider `{id}` at {base}");
    Ok(Some(Resolved {
        name: name.clone(),
        entry: Some((name, entry)),
    }))
}

/// A `response_format`, inline or from a `file://` JSON or YAML file.
fn response_format(
    reader: &mut Reader,
    value: &Value,
    at: &str,
) -> Result<Option<Value>, PromptfooError> {
    inline_or_file(reader, value, &format!("{at}.response_format")).map(Some)
}

/// A value written inline, or read from the `file://` JSON or YAML file it names.
fn inline_or_file(reader: &mut Reader, value: &Value, at: &str) -> Result<Value, PromptfooError> {
    let Some(reference) = value.as_str().filter(|s| s.starts_with("file://")) else {
        return Ok(value.clone());
    };
    let files = reader.files(reference, at)?;
    let [file] = files.as_slice() else {
        return Err(reader.invalid(format!("{at}: `{reference}` matches several files")));
    };
    let text = reader.read_text(file, at)?;
    Ok(crate::yaml::from_str(file, &text)?)
}

/// Sampling settings from a provider's or prompt's `config`, and a JSON schema from its
/// `response_format`. Connection keys are read by the caller; others are unsupported.
pub(super) fn params(
    reader: &mut Reader,
    config: &Map<String, Value>,
    at: &str,
) -> Result<(GenerationParams, Option<Value>), PromptfooError> {
    let mut params = GenerationParams::default();
    let mut schema = None;
    let number = |reader: &Reader, key: &str, value: &Value| {
        value
            .as_f64()
            .ok_or_else(|| reader.invalid(format!("{at}.{key}: expected a number, got {value}")))
    };
    for (key, value) in config {
        match key.as_str() {
            "temperature" => params.temperature = Some(number(reader, key, value)? as f32),
            "top_p" | "topP" => params.top_p = Some(number(reader, key, value)? as f32),
            "top_k" | "topK" => params.top_k = Some(number(reader, key, value)? as i32),
            "min_p" => params.min_p = Some(number(reader, key, value)? as f32),
            "repeat_penalty" | "repetition_penalty" => {
                params.repeat_penalty = Some(number(reader, key, value)? as f32)
            }
            "max_tokens" | "max_completion_tokens" | "num_predict" | "n_predict" => {
                params.max_tokens = Some(number(reader, key, value)?.max(1.0) as u32)
            }
            "seed" => params.seed = Some(number(reader, key, value)? as u32),
            "stop" => {
                params.stop = Some(match value {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => items
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| reader.invalid(format!("{at}.stop: expected strings")))?,
                    _ => return Err(reader.invalid(format!("{at}.stop: expected strings"))),
                })
            }
            "response_format" => match response_format(reader, value, at)?.as_ref().and_then(|v| {
                v.get("type")
                    .and_then(Value::as_str)
                    .map(|t| (t, v.clone()))
            }) {
                Some(("json_schema", value)) => {
                    schema = value.pointer("/json_schema/schema").cloned();
                    if schema.is_none() {
                        return Err(reader.invalid(format!(
                            "{at}.response_format: expected json_schema.schema"
                        )));
                    }
                }
                Some(("json_object", _)) => schema = Some(serde_json::json!({"type": "object"})),
                Some(("text", _)) | None => {}
                Some((_, value)) => reader.unsupported(format!("{at}.response_format {value}")),
            },
            // A provider's tools: read by `resolve` for remote providers.
            "apiBaseUrl" | "baseUrl" | "apiHost" | "apiKeyEnvar" | "apiKey" | "tools"
            | "tool_choice" => {}
            other => reader.unsupported(format!("{at}: setting `{other}`")),
        }
    }
    Ok((params, schema))
}
