//! `exsync-sim exchange …`, `exsync-sim salesforce …` and `exsync-sim graph …`.

use std::process::ExitCode;

const HELP: &str = "\
Simulators of the servers exsync talks to, for its tests, benchmarks and demo

Usage: exsync-sim <SIMULATOR> [OPTIONS]

Simulators:
  exchange    Exchange on premises: EWS and Autodiscover, Basic, NTLM and Negotiate
  salesforce  A Salesforce org: REST API and OAuth 2.0 (JWT bearer, client credentials)
  graph       Exchange Online through Microsoft Graph: the identity platform, RBAC for
              Applications, contacts, calendar, delta, $batch, throttling
  kdc         A throwaway MIT KDC on 127.0.0.1 for Kerberos (Negotiate) clients

Each serves HTTPS with its own CA, keeps its state in --data-dir, prints the path of its
sim.json on stdout once ready, and stops on SIGINT or SIGTERM.
`exsync-sim <SIMULATOR> --help` lists its options.

Options:
  -h, --help     Print help
  -V, --version  Print version
";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let which = if args.len() > 1 {
        args.remove(1)
    } else {
        String::new()
    };
    match which.as_str() {
        "exchange" => exsync_sim::exchange::cli::run(args),
        "salesforce" => exsync_sim::salesforce::cli::run(args),
        "graph" => exsync_sim::graph::cli::run(args),
        "kdc" => exsync_sim::kdc::run(args),
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        "-V" | "--version" => {
            println!("exsync-sim {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        other => {
            if !other.is_empty() {
                eprintln!("error: unknown simulator `{other}`\n");
            }
            eprint!("{HELP}");
            ExitCode::from(2)
        }
    }
}
