//! Every command and every flag of `exsync` says what it does in `--help`, so an admin never
//! meets an option explained only in the guide.

use clap::CommandFactory;

use crate::exsync_cli::Cli;

/// The commands and flags under `command` that have no help text, by their full path.
fn undocumented(command: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in command.get_arguments() {
        if matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            let name = arg
                .get_long()
                .map(|l| format!("--{l}"))
                .unwrap_or_else(|| arg.get_id().to_string());
            out.push(format!("{path} {name}"));
        }
    }
    for sub in command.get_subcommands() {
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(sub_path.clone());
        }
        undocumented(sub, &sub_path, out);
    }
}

#[test]
fn every_command_and_flag_has_help() {
    let mut command = Cli::command();
    command.build();
    let mut missing = Vec::new();
    undocumented(&command, "exsync", &mut missing);
    assert!(missing.is_empty(), "without help text: {missing:?}");
    // The walk reaches the leaves: a flag of a nested command is among what it looked at.
    let store_copy = command
        .find_subcommand("store")
        .and_then(|s| s.find_subcommand("copy"))
        .expect("exsync store copy");
    assert!(store_copy.get_arguments().count() > 1);
}
