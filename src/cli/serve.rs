//! `promptlab serve`: the OpenAI-compatible server (see `promptlab::serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use promptlab::project::Project;
use promptlab::serve::{ConnectionLimits, ServeConfig, router, serve_connections};

use super::Outcome;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default: other machines cannot reach it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Environment variable holding the API key clients must send as a bearer token.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// CPU threads per model (default: all cores).
    #[arg(long)]
    threads: Option<u32>,
    /// Requests to one model decoded together as parallel sequences (default 8).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    parallel: Option<u32>,
    /// Layers of each GGUF model put on a GPU: all, none or a number (default: the
    /// catalog's `gpu_layers`, else all when llama.cpp finds a GPU).
    #[arg(long, value_name = "all|none|N")]
    gpu_layers: Option<promptlab::catalog::GpuLayers>,
    /// Connections served at once; more wait until one closes.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Seconds a client has to send a request's headers before its connection is closed.
    #[arg(long, default_value_t = ConnectionLimits::default().header_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Project folder (default: found from the current folder).
    #[arg(long)]
    project: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<Outcome> {
    let start = args.project.clone().unwrap_or_else(|| PathBuf::from("."));
    let project = Project::discover(&start).context("cannot open the project")?;
    let api_key = match &args.api_key_env {
        None => None,
        Some(var) => Some(
            std::env::var(var)
                .ok()
                .filter(|k| !k.is_empty())
                .with_context(|| format!("--api-key-env {var}: the variable is not set"))?,
        ),
    };
    if !args.listen.ip().is_loopback() && api_key.is_none() {
        eprintln!(
            "warning: listening on {} without an API key: anyone who can reach it can use the models",
            args.listen
        );
    }
    let app = router(ServeConfig {
        catalog: project.catalog.clone(),
        api_key,
        threads: args.threads,
        parallel: args.parallel,
        gpu_layers: args.gpu_layers,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "serving {} on http://{}/v1 (Ctrl-C stops)",
            project.root.display(),
            listener.local_addr()?
        );
        let limits = ConnectionLimits {
            max_connections: args.max_connections as usize,
            header_timeout: std::time::Duration::from_secs(args.header_timeout),
        };
        serve_connections(listener, app, limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Passed)
}
