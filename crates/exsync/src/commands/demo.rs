//! `exsync demo`.

use std::process::ExitCode;

use anyhow::Context;
use exsync_lab::demo::{self, DemoOptions};

use crate::cli::{DemoArgs, DemoAuthArg};

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    if let Some(workers) = args.workers {
        return run_workers(args, workers);
    }
    // The KDC first, before any thread: it points MIT's library at itself through the
    // environment, and without it installed nothing else is started.
    let kerberos = match args.auth {
        DemoAuthArg::Ntlm => None,
        DemoAuthArg::Kerberos => Some(
            exsync_lab::kerberos::start_kdc()
                .context("exsync demo --auth kerberos runs its own KDC")?,
        ),
    };
    // The console left running tests connections with Kerberos too; this keeps the KDC's
    // configuration (now in KRB5_CONFIG) as it starts.
    let _krb5_conf = (kerberos.is_some() && args.keep_running)
        .then(super::serve::prepare_console_kerberos)
        .flatten();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let options = DemoOptions {
            users: args.users,
            contacts: args.contacts,
            events: args.events,
            online: args.online,
            dir: args.data_dir.clone(),
            kerberos: kerberos.as_ref().map(|(_, setup)| setup.clone()),
        };
        let outcome = demo::run(&options).await?;
        if args.keep_running {
            keep_running(
                &outcome.lab,
                std::time::Duration::from_secs(args.poll_interval),
            )
            .await?;
        }
        Ok(if outcome.converged {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

fn run_workers(args: &DemoArgs, workers: usize) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let options = super::demo_workers::WorkersDemo {
        workers,
        users: args.users,
        contacts: args.contacts,
        events: args.events,
        dir: args.data_dir.clone(),
    };
    let done = runtime.block_on(super::demo_workers::run(&options))?;
    Ok(if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Leaves the simulators running, with a configuration, a vault and the admin console for
/// them, says how to reach everything, and syncs every `interval` as `exsync run` does, so
/// what is changed in the simulators (or through the console) arrives on the other side.
async fn keep_running(lab: &exsync_lab::Lab, interval: std::time::Duration) -> anyhow::Result<()> {
    use exsync_console::{hash_password, serve, Console, ServeOptions};
    use exsync_engine::vault::{MasterKey, Vault};

    let dir = &lab.options.dir;
    let config = dir.join("exsync.toml");
    let key = MasterKey::generate();
    let key_text = key.to_base64();
    lab.write_config(&config, &key_text)?;
    // A throwaway console account for this demo only, shown once below.
    let password: String = {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect()
    };
    let hash = hash_password(&password)?;
    let store = std::sync::Arc::clone(&lab.syncer.store);
    store.create_admin_user(
        "admin",
        &hash,
        exsync_store::Role::Admin,
        chrono::Utc::now(),
    )?;
    let mut console = Console::new(
        std::sync::Arc::clone(&store),
        Vault::new(store, key),
        config.clone(),
    );
    console.connection_tests = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the console")?;
    let console_addr = listener.local_addr()?;
    tokio::spawn(serve(
        listener,
        std::sync::Arc::new(console),
        ServeOptions { tls: None },
    ));

    let exchange = &lab.exchange_sim.info;
    println!("\nKept running until Ctrl-C:");
    println!("  admin console:    http://{console_addr}/   (user admin, password {password}; this demo only)");
    println!(
        "  Exchange (EWS):   {}",
        exchange["ews_url"].as_str().unwrap_or_default()
    );
    if let Some(graph) = &lab.graph_sim {
        println!("  Graph (online):   {}", graph.info.graph_url);
    }
    println!(
        "  Salesforce:       {}",
        lab.salesforce_sim.info.instance_url
    );
    println!("  configuration:    {}", config.display());
    println!(
        "  simulators' data: {} (each sim.json has its CA, accounts and control API token)",
        dir.display()
    );
    println!(
        "  from another shell: EXSYNC_MASTER_KEY={} exsync status --config {}",
        key_text.as_str(),
        config.display()
    );
    println!(
        "  syncing every {}s, as `exsync run` does; each pass is summarised below",
        interval.as_secs()
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::service::wait_for_signal().await;
        let _ = stop.send(true);
    });
    let passes = exsync_engine::sync::daemon::run_reporting(
        std::sync::Arc::clone(&lab.syncer),
        interval,
        std::sync::Arc::clone(&lab.metrics),
        stopped,
        |report| println!("{}", pass_line(report)),
    )
    .await
    .context("the sync service stopped")?;
    println!("Stopped after {passes} passes.");
    Ok(())
}

/// One line per pass: when it ended and what it wrote, and the users that failed with why.
fn pass_line(report: &exsync_engine::sync::service::PassReport) -> String {
    let now = chrono::Local::now().format("%H:%M:%S %Z");
    if report.disabled {
        return format!("pass at {now}: sync is switched off in the console");
    }
    if let Some(e) = &report.crm_error {
        return format!("pass at {now}: the CRM could not be read: {e}");
    }
    let (mut created, mut updated, mut deleted) = (0, 0, 0);
    for user in &report.users {
        created += user.counts.created;
        updated += user.counts.updated;
        deleted += user.counts.deleted;
    }
    let mut line = format!(
        "pass at {now}: {} users, {created} created, {updated} updated, {deleted} deleted, {} failing",
        report.users.len(),
        report.failed_users()
    );
    for user in report.users.iter().filter(|u| u.error.is_some()) {
        let who = user
            .user
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let why = user
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        line.push_str(&format!("\n  {who}: {why}"));
    }
    line
}
