//! The `calsync` binary.

use calsync_server::cli::{Cli, Command};
use calsync_server::{commands, config::Config, logging};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // One TLS implementation (ring) for every outbound connection; reqwest is built without one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Some(Command::Sandbox { bind, seed, state, no_quota }) = &cli.command {
        // The sandbox needs no database, key or configuration file.
        logging::init(cli.settings.log_format.unwrap_or(calsync_server::cli::LogFormat::Text), "info");
        return standalone(commands::sandbox(bind, *seed, state.clone(), *no_quota));
    }
    if let Some(Command::Bench(bench)) = &cli.command {
        // A fresh database and its own providers: no configuration involved.
        logging::init(cli.settings.log_format.unwrap_or(calsync_server::cli::LogFormat::Text), "warn");
        return standalone(run_bench(bench));
    }
    let config = match Config::load(&cli.settings) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve { no_worker: false });
    // Admin commands print their result on stdout; keep the log to warnings there.
    let long_running = matches!(command, Command::Serve { .. } | Command::Worker);
    let filter = if long_running { config.log_filter.clone() } else { "warn".to_owned() };
    // Admin and migrate output belongs on stdout alone.
    logging::init(config.log_format, &filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(config, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

/// Runs a command that needs no configuration on its own runtime; an error is printed.
fn standalone(run: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_bench(bench: &calsync_server::cli::BenchCommand) -> anyhow::Result<()> {
    use calsync_server::cli::BenchCommand;
    let provider = |p: &str| p.parse().map_err(|e| anyhow::anyhow!("--provider: {e}"));
    match bench {
        BenchCommand::Scheduler {
            provider: p,
            connections,
            latency_ms,
            concurrency,
            samples,
            poll_seconds,
            postgres,
        } => {
            calsync_server::bench_scheduler::run(calsync_server::bench_scheduler::SchedulerOptions {
                provider: provider(p)?,
                connections: *connections,
                latency_ms: *latency_ms,
                concurrency: *concurrency,
                samples: *samples,
                poll_seconds: *poll_seconds,
                postgres: postgres.clone(),
            })
            .await
        }
        BenchCommand::Sync { provider: p, events, push } => {
            calsync_server::bench::run(calsync_server::bench::BenchOptions {
                provider: provider(p)?,
                imports: events.clone(),
                push: *push,
            })
            .await
        }
        BenchCommand::Caldav { events, python } => {
            calsync_server::bench_caldav::run(calsync_server::bench_caldav::CalDavBenchOptions {
                events: *events,
                python: python.clone(),
            })
            .await
        }
    }
}
