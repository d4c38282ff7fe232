//! How the catalog describes a remote model (`kind: openai`, under `openai:`): the
//! servers and how to talk to them. The engine that talks to them is
//! `engine::openai::OpenAiEngine`.

use serde::{Deserialize, Serialize};

/// How the catalog describes a remote model (`kind: openai`, under `openai:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSettings {
    /// The model name the servers know it by.
    pub model: String,
    /// Base URLs as OpenAI clients take them (ending in `/v1`), or `{url, concurrency,
    /// api_key_env}` objects.
    pub endpoints: Vec<EndpointSpec>,
    /// Environment variable holding the API key, sent as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Requests in flight per endpoint (default 4).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Limit for one attempt, from sending the request to the reply's last byte.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: f64,
    /// Further attempts after a retryable failure.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Stream replies (server-sent events) to see tokens as they come and measure the
    /// time to the first token.
    #[serde(default = "default_true")]
    pub stream: bool,
    /// Send llama.cpp's samplers (`top_k`, `min_p`, `repeat_penalty`) that llama-server
    /// and vLLM accept; turn off for servers that refuse unknown fields.
    #[serde(default = "default_true")]
    pub sampling_extensions: bool,
    /// OpenAI function tools offered with every request (`tools`); a reply that calls
    /// them becomes the cell's output as OpenAI `tool_calls` JSON, which
    /// `is-valid-openai-tools-call` checks against these specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// OpenAI `tool_choice` sent with the tools (`auto`, `none`, `required`, or a
    /// function); the server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EndpointSpec {
    Url(String),
    Detailed {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        concurrency: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key_env: Option<String>,
    },
}

impl EndpointSpec {
    pub fn url(&self) -> &str {
        match self {
            EndpointSpec::Url(url) | EndpointSpec::Detailed { url, .. } => url,
        }
    }
}

fn default_concurrency() -> usize {
    4
}
fn default_timeout_s() -> f64 {
    600.0
}
fn default_connect_timeout_s() -> f64 {
    10.0
}
fn default_retries() -> u32 {
    3
}
fn default_true() -> bool {
    true
}

impl RemoteSettings {
    /// What is wrong with these settings, if anything: checked when the catalog loads,
    /// so a typo is a configuration error before a run rather than a failure per cell.
    pub fn problem(&self) -> Option<String> {
        if self.endpoints.is_empty() {
            return Some("`openai.endpoints` is empty: expected at least one URL".into());
        }
        for endpoint in &self.endpoints {
            let url = endpoint.url();
            let parsed = reqwest::Url::parse(url);
            if !matches!(parsed.as_ref().map(|u| u.scheme()), Ok("http" | "https")) {
                return Some(format!(
                    "`openai.endpoints`: `{url}` is not an http(s) URL (expected e.g. http://127.0.0.1:8080/v1)"
                ));
            }
            if let EndpointSpec::Detailed {
                concurrency: Some(0),
                ..
            } = endpoint
            {
                return Some(format!("`openai.endpoints`: `{url}` has concurrency 0"));
            }
        }
        if self.concurrency == 0 {
            return Some("`openai.concurrency` is 0: expected at least 1".into());
        }
        for (key, value) in [
            ("timeout_s", self.timeout_s),
            ("connect_timeout_s", self.connect_timeout_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Some(format!(
                    "`openai.{key}` is {value}: expected a number of seconds above 0"
                ));
            }
        }
        None
    }

    /// Settings for one endpoint with every default.
    pub fn single(model: &str, url: &str) -> RemoteSettings {
        RemoteSettings {
            model: model.to_string(),
            endpoints: vec![EndpointSpec::Url(url.to_string())],
            api_key_env: None,
            concurrency: default_concurrency(),
            timeout_s: default_timeout_s(),
            connect_timeout_s: default_connect_timeout_s(),
            retries: default_retries(),
            stream: true,
            sampling_extensions: true,
            tools: Vec::new(),
            tool_choice: None,
        }
    }
}
