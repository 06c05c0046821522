//! The admin guide (docs/admin-guide.md) against the product: every `exsync` command in its
//! shell blocks parses with the binary's own command line, and every configuration key it
//! names is one the configuration loader knows. A renamed flag, subcommand or key fails here
//! until the guide follows.

use std::path::Path;

use clap::error::ErrorKind;
use clap::Parser;
use exsync_testkit::cli;

use crate::exsync_cli;

fn guide() -> String {
    let path = exsync_testkit::paths::workspace().join("docs/admin-guide.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fenced block: its info string and its lines.
struct Block {
    lang: String,
    first_line: usize,
    lines: Vec<String>,
}

/// Fenced code blocks (indented ones too, as inside list items), and the prose outside them.
fn split(markdown: &str) -> (Vec<Block>, String) {
    let mut blocks = Vec::new();
    let mut prose = String::new();
    let mut open: Option<Block> = None;
    for (n, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_owned(),
                    first_line: n + 2,
                    lines: Vec::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => block.lines.push(trimmed.to_owned()),
            (None, None) => {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    assert!(open.is_none(), "the guide ends inside a code block");
    (blocks, prose)
}

/// A shell line's words: whitespace-separated, single and double quotes grouping (what the
/// guide's commands use; no variables are expanded, `$(…)` stays one word).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    let mut depth = 0usize;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') if depth == 0 => {
                quote = Some(c);
                started = true;
            }
            (None, '(') => {
                depth += 1;
                word.push(c);
            }
            (None, ')') => {
                depth = depth.saturating_sub(1);
                word.push(c);
            }
            (None, c) if c.is_whitespace() && depth == 0 => {
                if started || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, c) => word.push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quote in `{line}`");
    if started || !word.is_empty() {
        out.push(word);
    }
    out
}

/// The exsync arguments one shell command carries, if it runs exsync: directly (after `sudo`,
/// `sudo -u USER` or `VAR=value`), as `./target/release/exsync`, or as the image's entry
/// point in `podman run … exsync ARGS` (the Containerfile's ENTRYPOINT and CMD).
fn exsync_args(command: &[String]) -> Option<Vec<String>> {
    let mut i = 0;
    while i < command.len() {
        match command[i].as_str() {
            "sudo" => i += 1,
            "-u" | "-g" if i > 0 && command[i - 1] == "sudo" => i += 2,
            w if w.contains('=') && !w.starts_with('-') => i += 1,
            _ => break,
        }
    }
    let program = command.get(i)?;
    if program == "exsync" || program.ends_with("/exsync") {
        return Some(command[i + 1..].to_vec());
    }
    if (program == "podman" || program == "docker") && command.get(i + 1)? == "run" {
        // Options before the image; the image is the first word that is not an option or an
        // option's value.
        let mut j = i + 2;
        while j < command.len() {
            let w = command[j].as_str();
            if ["-v", "--name", "-e", "-p", "--volume", "--env", "--publish"].contains(&w) {
                j += 2;
            } else if w.starts_with('-') {
                j += 1;
            } else {
                break;
            }
        }
        if command.get(j)? == "exsync" {
            let (entrypoint, cmd) = image_command();
            let mut args = entrypoint;
            let given = &command[j + 1..];
            args.extend_from_slice(if given.is_empty() { &cmd } else { given });
            return Some(args);
        }
    }
    None
}

/// The image's exsync arguments, from the Containerfile: its ENTRYPOINT's after the program,
/// and its CMD (what runs when `podman run` gives none).
fn image_command() -> (Vec<String>, Vec<String>) {
    let file = exsync_testkit::paths::workspace().join("Containerfile");
    let text = std::fs::read_to_string(file).unwrap();
    let form = |instruction: &str| -> Vec<String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(instruction))
            .unwrap_or_else(|| panic!("the Containerfile has no {instruction}"));
        serde_json::from_str(line.trim()).unwrap()
    };
    let mut entrypoint = form("ENTRYPOINT ");
    assert_eq!(
        entrypoint.first().map(String::as_str),
        Some("/usr/bin/exsync")
    );
    entrypoint.remove(0);
    (entrypoint, form("CMD "))
}

/// Shell lines split into the commands of a pipeline or list, redirections left out.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let line = line.split(" #").next().unwrap_or("");
    let mut commands = vec![Vec::new()];
    let mut skip_next = false;
    for w in words(line) {
        if skip_next {
            skip_next = false;
            continue;
        }
        match w.as_str() {
            "|" | "&&" | "||" | ";" => commands.push(Vec::new()),
            "<" | ">" | ">>" | "2>" | "2>&1" => skip_next = w != "2>&1",
            _ => commands.last_mut().unwrap().push(w),
        }
    }
    commands.retain(|c| !c.is_empty());
    commands
}

/// Parses `exsync ARGS` as the binary does; `strict` also refuses a command that is
/// incomplete (a shell block's commands are meant to be run as written, prose may name
/// `exsync secrets set` without its NAME).
fn parse(args: &[String], strict: bool) -> Result<(), String> {
    let argv = std::iter::once("exsync".to_owned()).chain(args.iter().cloned());
    match exsync_cli::Cli::try_parse_from(argv) {
        Ok(cli) => {
            cli.resolve_config();
            Ok(())
        }
        Err(e) => match e.kind() {
            ErrorKind::DisplayVersion | ErrorKind::DisplayHelp => Ok(()),
            ErrorKind::MissingRequiredArgument
            | ErrorKind::MissingSubcommand
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                if !strict =>
            {
                Ok(())
            }
            _ => Err(e.to_string()),
        },
    }
}

/// Inline code spans of the prose.
fn spans(prose: &str) -> Vec<String> {
    prose
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// The configuration's sections, as the example configuration documents them (a section it
/// leaves commented out, as `# [exchange_online]`, included).
fn sections() -> Vec<String> {
    let example = exsync_testkit::paths::workspace().join("exsync.example.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let mut sections: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start_matches(['#', ' ']).strip_prefix('['))
        .filter_map(|h| h.split(['.', ']']).next())
        .map(str::to_owned)
        .collect();
    sections.sort();
    sections.dedup();
    sections
}

/// A configuration key the prose names: `section.key…`, `section.key = value` or a table
/// header `[section…]`, with
/// a placeholder (`<name>`) standing for a configuration's name.
fn as_key(span: &str, sections: &[String]) -> Option<String> {
    // `key = value` names its key too.
    let span = span.split(" = ").next().unwrap_or(span);
    let key = span
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(span)
        .replace("<name>", "sales");
    let mut parts = key.split('.');
    let section = parts.next()?;
    let rest_ok = parts.all(|p| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    });
    (sections.iter().any(|s| s == section) && rest_ok).then_some(key)
}

/// Problems `exsync config check` reports for a file, as text.
fn config_check(dir: &Path, text: &str) -> String {
    let file = dir.join("exsync.toml");
    std::fs::write(&file, text).unwrap();
    let ran = cli::run(
        env!("CARGO_BIN_EXE_exsync"),
        ["config", "check", file.to_str().unwrap()],
    );
    ran.text()
}

/// What the loader says about a key: `None` when it knows it, else its complaint. No key takes
/// a date-time, so the loader names every key it reads as having the wrong type, and
/// calls any other one unknown (or a secret, for a secret's name).
fn unknown(dir: &Path, key: &str) -> Option<String> {
    let out = config_check(dir, &format!("{key} = 1979-05-27T07:32:00Z\n"));
    // A secret's name (`crm.private_key`) is refused as a key: it belongs in the vault.
    let refused = |l: &&str| l.contains("unknown key") || l.contains("secrets do not belong");
    if let Some(line) = out.lines().find(refused) {
        return Some(line.to_owned());
    }
    let named = format!(": {key}: ");
    if !out.lines().any(|l| l.contains(&named)) {
        return Some(format!("the loader said nothing about it: {out}"));
    }
    None
}

#[test]
fn every_exsync_command_in_the_guide_parses_with_the_real_command_line() {
    let (blocks, prose) = split(&guide());
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks.iter().filter(|b| b.lang == "sh") {
        for (offset, line) in block.lines.iter().enumerate() {
            for command in shell_commands(line) {
                let Some(args) = exsync_args(&command) else {
                    continue;
                };
                checked += 1;
                if let Err(e) = parse(&args, true) {
                    failures.push(format!(
                        "docs/admin-guide.md:{}: `{line}`: {e}",
                        block.first_line + offset
                    ));
                }
            }
        }
    }
    for span in spans(&prose).iter().filter(|s| s.starts_with("exsync ")) {
        let command = words(span);
        checked += 1;
        if let Err(e) = parse(&command[1..], false) {
            failures.push(format!("docs/admin-guide.md: `{span}`: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The guide covers install, secrets, check, status, reset, the switch, the console's
    // accounts and key rotation: far more than this many commands.
    assert!(
        checked >= 30,
        "only {checked} exsync commands found in the guide"
    );
}

#[test]
fn a_renamed_flag_or_subcommand_fails_the_parse() {
    let bad = |line: &str| {
        let args = shell_commands(line)
            .iter()
            .find_map(|c| exsync_args(c))
            .unwrap();
        parse(&args, true).is_err()
    };
    assert!(bad(
        "sudo -u exsync exsync -c /etc/exsync/exsync.toml sync --dryrun"
    ));
    assert!(bad("exsync secrets rotate --key-file k"));
    assert!(bad("exsync admin add-user alice --role root"));
    assert!(bad(
        "podman run --rm -v s:/var/lib/exsync exsync status --usr a@example.com"
    ));
    assert!(!bad(
        "sudo -u exsync exsync -c /etc/exsync/exsync.toml sync --dry-run"
    ));
    assert!(!bad(
        "printf x | exsync secrets set crm.private_key < key.pem"
    ));
}

#[test]
fn every_configuration_key_the_guide_names_is_one_the_loader_reads() {
    let (blocks, prose) = split(&guide());
    let dir = tempfile::tempdir().unwrap();
    let sections = sections();
    assert!(sections.len() >= 8, "{sections:?}");
    let keys: std::collections::BTreeSet<String> = spans(&prose)
        .iter()
        .filter_map(|s| as_key(s, &sections))
        .collect();
    let mut failures = Vec::new();
    for key in &keys {
        if let Some(complaint) = unknown(dir.path(), key) {
            failures.push(format!("`{key}`: {complaint}"));
        }
    }
    // The TOML examples: every key in them known (the examples are fragments, so a missing
    // required section is not a problem here).
    let mut fragments = 0;
    for block in blocks.iter().filter(|b| b.lang == "toml") {
        fragments += 1;
        let out = config_check(dir.path(), &block.lines.join("\n"));
        for l in out
            .lines()
            .filter(|l| l.contains("unknown key") || l.contains("TOML"))
        {
            failures.push(format!("docs/admin-guide.md:{}: {l}", block.first_line));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(keys.len() >= 25, "only {} keys found: {keys:?}", keys.len());
    assert!(fragments >= 1, "no TOML example found");
}

#[test]
fn the_key_check_tells_a_real_key_from_a_misspelt_one() {
    let dir = tempfile::tempdir().unwrap();
    for real in [
        "exchange.ca_file",
        "exchange_online.all_users",
        "configurations.sales.events.select",
        "network.resolve",
    ] {
        assert_eq!(unknown(dir.path(), real), None, "{real}");
    }
    for wrong in [
        "exchange.ca_files",
        "exchange_online.allusers",
        "configurations.sales.events.selection",
        "crm.private_key",
    ] {
        assert!(unknown(dir.path(), wrong).is_some(), "{wrong}");
    }
}

/// Subcommands that work on local files only (configuration, vault, state database), so the
/// guide's uses of them can run for real here; the others reach Exchange or Salesforce
/// (`check`, `sync` passes, `run`, `serve`) and are parsed only.
fn runs_locally(args: &[String]) -> bool {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with('/') && !w.starts_with('-'))
        .collect();
    let toggle = args.iter().any(|a| a == "--enable" || a == "--disable");
    match words.first().copied() {
        Some("config" | "secrets" | "status" | "reset" | "admin") => true,
        Some("sync") => toggle,
        None => args.iter().any(|a| a == "--version"),
        _ => false,
    }
}

#[test]
fn the_guides_local_commands_run_against_an_installation_in_a_folder() {
    // The package's layout in a temporary folder: its configuration (the example, state
    // database beside it) and its key file.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("exsync.toml");
    std::fs::copy(
        exsync_testkit::paths::workspace().join("exsync.example.toml"),
        &config,
    )
    .unwrap();
    let key = dir.path().join("exsync.key");
    let place = |arg: &String| match arg.as_str() {
        "/etc/exsync/exsync.toml" => config.to_str().unwrap().to_owned(),
        "/var/lib/exsync/exsync.key" => key.to_str().unwrap().to_owned(),
        _ => arg.clone(),
    };
    let (blocks, _) = split(&guide());
    let mut ran = 0;
    for block in blocks.iter().filter(|b| b.lang == "sh") {
        for line in &block.lines {
            for command in shell_commands(line) {
                let Some(args) = exsync_args(&command) else {
                    continue;
                };
                if !runs_locally(&args) {
                    continue;
                }
                let args: Vec<String> = args.iter().map(place).collect();
                // What the guide pipes in (a password, a PEM file) is a value the vault stores
                // as it is; the account commands read a password.
                let out = cli::Cli::new(env!("CARGO_BIN_EXE_exsync"))
                    .args(&args)
                    .current_dir(dir.path())
                    .env_remove("EXSYNC_MASTER_KEY")
                    .stdin("a value long enough for any password rule 1!\n")
                    .run();
                // A folder that has never synced knows no user yet: the per-user commands
                // say so, which is their answer rather than a failure to run.
                let never_synced = out.text().contains("has never been synced");
                assert!(
                    out.code() == Some(0) || (out.code() == Some(1) && never_synced),
                    "`{line}` failed:\n{}",
                    out.text()
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 15, "only {ran} of the guide's commands ran");
}
