//! calsync's HTTP service and command line: the REST API, the web UI, authentication and the
//! services they share. The binary in `main.rs` is a thin shell around [`commands::run`].

pub mod api;
pub mod auth;
pub mod bench;
pub mod bench_caldav;
pub mod bench_scheduler;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod providers;
pub mod services;
pub mod startup;
pub mod state;
pub mod throttle;
pub mod web;
pub mod webhooks;
pub mod worker;
