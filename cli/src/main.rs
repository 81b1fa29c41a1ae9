//! `apirule`: a user's APIRules checked, rendered into the Istio manifests that run the filter,
//! explained request by request, and migrated from v1beta1 to v2, all with the filter's own
//! configuration and policy code.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod check;
mod explain;
mod input;
mod migrate;
mod offline;
mod output;
mod render;
mod tokens;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use input::{Document, Placeholders};
use output::Format;

const EXAMPLES: &str = "\
Examples:
  apirule check run/apirules/httpbin.yaml --env        # ${VAR}s from the environment
  kubectl get apirules -A -o yaml | apirule check -
  apirule render apirule.yaml --wasm-url oci://registry.example.com/apirule-wasm:0.1.0 \\
      --sha256 <digest from make oci> > manifests.yaml && kubectl apply -f manifests.yaml
  apirule explain apirule.yaml --method GET --path /headers --token \"$TOKEN\" --jwks jwks.json
  apirule migrate v1beta1.yaml > v2.yaml

Exit codes: 0 ok, 1 a problem was found (or explain: the request is denied), 2 the command could \
not run (usage, unreadable input, explain cannot decide offline).";

/// Check, render, explain and migrate Kyma APIRules for the apirule-wasm filter.
#[derive(Parser)]
#[command(name = "apirule", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Inputs {
    /// APIRule YAML/JSON files (multi-document too), plugin configurations or WasmPlugins; - for
    /// stdin
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// Replace ${VAR} placeholders (as in Kyma's tutorials) from the environment; an unset one is
    /// an error
    #[arg(long)]
    env: bool,
}

impl Inputs {
    fn read(&self) -> Result<Vec<Document>, input::InputError> {
        let placeholders = if self.env { Placeholders::FromEnv } else { Placeholders::Keep };
        input::read_all(&self.files, placeholders)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Load every document as the filter will, and name each problem by file, document and JSON
    /// path
    Check {
        #[command(flatten)]
        inputs: Inputs,
    },
    /// Print the manifests to apply: one WasmPlugin holding the APIRules, a VirtualService per
    /// APIRule, and the ServiceEntry/DestinationRule/VirtualService that keep each IdP reachable
    /// from the gateway
    Render(RenderArgs),
    /// Say which rule a request meets, what the filter answers and why ("why do I get 401?")
    Explain(ExplainArgs),
    /// Turn v1beta1 APIRules into v2, report what v2 cannot express, and prove the result by
    /// deciding a generated request set with both
    Migrate {
        #[command(flatten)]
        inputs: Inputs,
        #[arg(long, short, value_enum, default_value_t = Format::Yaml)]
        output: Format,
    },
}

#[derive(Args)]
struct RenderArgs {
    #[command(flatten)]
    inputs: Inputs,
    /// Where Istio pulls the filter from (oci://... or https://...)
    #[arg(long)]
    wasm_url: String,
    /// The WasmPlugin's sha256: the image digest `make oci` prints for oci://, the .wasm's
    /// sha256 for https://
    #[arg(long)]
    sha256: Option<String>,
    /// Namespace of the WasmPlugin, ServiceEntries and DestinationRules (the ingress gateway's)
    #[arg(long, default_value = "istio-system")]
    namespace: String,
    /// Label selecting the ingress gateway pods, KEY=VALUE
    #[arg(long, default_value = "istio=ingressgateway")]
    selector: String,
    /// Mark every APIRule `apirule-wasm.kyma-project.io/mode: dry-run`: the filter logs and
    /// counts what it would answer and lets every request go on
    #[arg(long)]
    dry_run: bool,
    /// The WasmPlugin's failStrategy when the filter's VM fails: FAIL_CLOSE (every Istio
    /// version) or FAIL_RELOAD (Istio 1.25 and later: a new VM for the next request). Never
    /// FAIL_OPEN: an auth filter that fails must not let traffic through (docs/behaviour.md,
    /// "When the filter's VM fails")
    #[arg(long, value_enum, default_value_t = render::FailStrategy::FailClose)]
    fail_strategy: render::FailStrategy,
    #[arg(long, short, value_enum, default_value_t = Format::Yaml)]
    output: Format,
}

#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    inputs: Inputs,
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// The request's path, with its query if any
    #[arg(long)]
    path: String,
    /// The Host header; needed when the rules govern more than one host
    #[arg(long)]
    host: Option<String>,
    /// A JWT, sent as `Authorization: Bearer <JWT>`
    #[arg(long)]
    token: Option<String>,
    /// The key set the rules' JWKS URLs serve (a JWKS JSON file), to verify --token
    #[arg(long, value_name = "FILE")]
    jwks: Option<String>,
    /// Another request header, NAME:VALUE (repeatable)
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    headers: Vec<String>,
    #[arg(long, short, value_enum)]
    output: Option<Format>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("apirule: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Check { inputs } => {
            let docs = inputs.read().map_err(|e| e.0)?;
            let outcome = check::check(&docs);
            for p in &outcome.problems {
                eprintln!("{p}");
            }
            match outcome.config {
                Some(config) => {
                    for line in check::summary(&config) {
                        println!("{line}");
                    }
                    for line in check::warnings(&docs) {
                        eprintln!("{line}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                None => Ok(ExitCode::FAILURE),
            }
        }
        Command::Render(args) => {
            let docs = args.inputs.read().map_err(|e| e.0)?;
            let config = loaded(&docs)?;
            let selector = args
                .selector
                .split_once('=')
                .ok_or_else(|| format!("--selector {}: expected KEY=VALUE", args.selector))?;
            let options = render::Options {
                wasm_url: args.wasm_url,
                sha256: args.sha256,
                namespace: args.namespace,
                selector: (selector.0.to_owned(), selector.1.to_owned()),
                dry_run: args.dry_run,
                fail_strategy: args.fail_strategy,
            };
            let manifests = render::render(&docs, &config, &options)?;
            print!("{}", output::documents(&manifests, args.output)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(args) => {
            let docs = args.inputs.read().map_err(|e| e.0)?;
            let config = loaded(&docs)?;
            let jwks = match &args.jwks {
                Some(file) => Some(std::fs::read(file).map_err(|e| format!("--jwks {file}: {e}"))?),
                None => None,
            };
            let mut headers = Vec::new();
            for h in &args.headers {
                let (name, value) = h.split_once(':').ok_or_else(|| format!("--header {h}: expected NAME:VALUE"))?;
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            let query = explain::Query {
                method: args.method,
                path: args.path,
                host: args.host,
                token: args.token,
                headers,
                jwks,
            };
            let explanation = explain::explain(&config, &docs, &query)?;
            match args.output {
                None => print!("{}", explain::text(&explanation.report)),
                Some(format) => print!("{}", output::documents(&[explanation.report], format)?),
            }
            Ok(match explanation.allowed {
                Some(true) => ExitCode::SUCCESS,
                Some(false) => ExitCode::FAILURE,
                None => ExitCode::from(2),
            })
        }
        Command::Migrate { inputs, output } => {
            let docs = inputs.read().map_err(|e| e.0)?;
            loaded(&docs)?;
            let result = migrate::migrate(&docs)?;
            for line in &result.report {
                eprintln!("{line}");
            }
            print!("{}", output::documents(&result.apirules, output)?);
            Ok(if result.clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// Sets `key` of a JSON object (what `value[key] = ...` does, without its panic on a non-object).
fn set(target: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if let Some(map) = target.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

/// The inputs loaded as the filter would load them, or every problem `check` finds.
fn loaded(docs: &[Document]) -> Result<apirule_wasm::config::Config, String> {
    let outcome = check::check(docs);
    outcome
        .config
        .ok_or_else(|| format!("the inputs do not load (run `apirule check`):\n{}", outcome.problems.join("\n")))
}
