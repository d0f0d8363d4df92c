//! # postern — the binary: command line, configuration, wiring
//!
//! The only place that picks backends and starts listeners. `postern serve` runs the
//! server; every other subcommand is an administrative action that calls the same
//! `postern-core` function the admin API calls (one code path per action).
//!
//! **Security:** the CLI is trusted local input (whoever runs it can read the data
//! directory). Run as root next to a server that dropped privileges, it first becomes
//! the data directory's owner so that files it creates stay readable by the server.
#![forbid(unsafe_code)]

mod cli;
mod config;
mod http;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "postern",
    version,
    about = "Postern: mail, calendars and contacts server"
)]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded defaults are used.
    #[arg(long, global = true, env = "POSTERN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` of the configuration).
    #[arg(long, global = true, env = "POSTERN_DATA")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (creates the data directory on first start).
    Serve,
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Mail domains.
    #[command(subcommand)]
    Domain(cli::DomainCmd),
    /// Accounts, shared mailboxes, groups and resources.
    #[command(subcommand)]
    Account(cli::AccountCmd),
    /// Aliases and catch-alls (`*@domain`).
    #[command(subcommand)]
    Alias(cli::AliasCmd),
    /// Members of a group (distribution list).
    #[command(subcommand)]
    Group(cli::GroupCmd),
    /// Mailbox contents.
    #[command(subcommand)]
    Mailbox(cli::MailboxCmd),
    /// The access ledger.
    #[command(subcommand)]
    Audit(cli::AuditCmd),
    /// The store.
    #[command(subcommand)]
    Store(cli::StoreCmd),
    /// The outbound queue.
    #[command(subcommand)]
    Queue(cli::QueueCmd),
    /// Calendars and address books (sharing).
    #[command(subcommand)]
    Dav(cli::DavCmd),
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Check a configuration file; errors name the key and line.
    Check { file: PathBuf },
    /// Print the embedded default configuration.
    Defaults,
}

fn load_config(cli: &Cli) -> Result<config::Config, String> {
    let mut cfg = match &cli.config {
        Some(path) => config::Config::load(path).map_err(|e| e.to_string())?,
        None => config::Config::default(),
    };
    if let Some(d) = &cli.data {
        cfg.data_dir = d.clone();
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    // Everything Postern creates (blobs, database, keys) is for its own user only:
    // mail and password hashes must not become readable through a 0755 parent.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    match &cli.command {
        Command::Config(ConfigCmd::Check { file }) => match config::Config::load(file) {
            Ok(c) => {
                println!("{}: ok ({} listeners)", file.display(), c.listeners().len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Config(ConfigCmd::Defaults) => {
            println!("{}", include_str!("../../../postern.example.toml"));
            ExitCode::SUCCESS
        }
        _ => {
            let cfg = match load_config(&cli) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let result = match cli.command {
                Command::Serve => serve::run(cfg),
                Command::Domain(c) => cli::run(cfg, cli::Action::Domain(c)),
                Command::Account(c) => cli::run(cfg, cli::Action::Account(c)),
                Command::Alias(c) => cli::run(cfg, cli::Action::Alias(c)),
                Command::Group(c) => cli::run(cfg, cli::Action::Group(c)),
                Command::Mailbox(c) => cli::run(cfg, cli::Action::Mailbox(c)),
                Command::Audit(c) => cli::run(cfg, cli::Action::Audit(c)),
                Command::Store(c) => cli::run(cfg, cli::Action::Store(c)),
                Command::Queue(c) => cli::run(cfg, cli::Action::Queue(c)),
                Command::Dav(c) => cli::run(cfg, cli::Action::Dav(c)),
                Command::Config(_) => Ok(ExitCode::SUCCESS),
            };
            match result {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("postern: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
