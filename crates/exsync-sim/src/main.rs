//! `exsync-sim exchange …`, `exsync-sim salesforce …` and `exsync-sim graph …`.

use std::process::ExitCode;

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
        _ => {
            eprintln!("usage: exsync-sim exchange|salesforce|graph [OPTIONS]  (--help on any for its options)");
            ExitCode::from(2)
        }
    }
}
