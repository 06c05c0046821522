//! `exsync-sim exchange …` and `exsync-sim salesforce …`.

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
        _ => {
            eprintln!("usage: exsync-sim exchange|salesforce [OPTIONS]  (--help on either for its options)");
            ExitCode::from(2)
        }
    }
}
