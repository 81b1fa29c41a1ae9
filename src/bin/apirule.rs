//! `apirule`: check a plugin configuration the way the filter will load it.
//!
//! `apirule check FILE` parses and validates the JSON plugin configuration (the same code the
//! filter runs in `on_configure`) and prints either a summary or the error with its JSON path.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cmd), Some(file)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: apirule check PLUGIN_CONFIG.json");
        return ExitCode::from(2);
    };
    if cmd != "check" {
        eprintln!("unknown command {cmd}; usage: apirule check PLUGIN_CONFIG.json");
        return ExitCode::from(2);
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{file}: {e}");
            return ExitCode::from(2);
        }
    };
    match apirule_wasm::config::parse(&bytes) {
        Ok(cfg) => {
            for h in cfg.policy.hosts() {
                println!("{}: host {} ({} route(s))", h.apirule, h.host, h.route_count());
            }
            for url in cfg.jwks.values() {
                println!("JWKS {} via cluster {}", url.url, url.cluster);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
