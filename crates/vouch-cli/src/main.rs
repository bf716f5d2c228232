//! `vouch`: a trusted WebAssembly compute node for IPFS data.
//!
//! Exit codes: 0 success, 1 verification failed, 2 error, 3 a job ran (and has a receipt) but
//! did not exit 0.

mod attest_cli;
mod bench;
mod commands;
mod demo;
mod demo_confidential;
mod home;
mod import;
mod job;
mod jobs_cli;
mod node_bench;
mod node_cli;
mod seal_cli;
mod units;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Vouch: run code where the data is, and prove what ran.
#[derive(Parser)]
#[command(name = "vouch", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add files or directories to the store (the CIDs `ipfs add` gives).
    Add(commands::AddArgs),
    /// Print the bytes of a file: CID[/path]. Not stored here: fetched by the running daemon.
    Cat {
        path: String,
        /// With a daemon fetching from peers: the longest wait for any one block.
        #[arg(long, default_value = "60s")]
        timeout: String,
    },
    /// Write a file or directory tree to disk. Not stored here: fetched by the running daemon.
    Get {
        path: String,
        /// Where to write (default: the CID or last path segment, in the current directory).
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        /// With a daemon fetching from peers: the longest wait for any one block.
        #[arg(long, default_value = "60s")]
        timeout: String,
    },
    /// List a directory.
    Ls {
        path: String,
        #[arg(long)]
        json: bool,
    },
    /// Raw blocks.
    #[command(subcommand)]
    Block(commands::BlockCmd),
    /// IPLD views of blocks.
    #[command(subcommand)]
    Dag(commands::DagCmd),
    /// CARv1 archives.
    #[command(subcommand)]
    Car(commands::CarCmd),
    /// Pins keep DAGs from garbage collection.
    #[command(subcommand)]
    Pin(commands::PinCmd),
    /// Remove blocks no pin reaches.
    Gc(JsonFlag),
    /// The store itself.
    #[command(subcommand)]
    Repo(commands::RepoCmd),
    /// Run a Wasm module over stored inputs in the sandbox; prints the receipt.
    Run(jobs_cli::RunArgs),
    /// Show or export receipts.
    #[command(subcommand)]
    Receipt(jobs_cli::ReceiptCmd),
    /// Verify a receipt offline: exit 0 verified, 1 not verified, 2 error.
    Verify(jobs_cli::VerifyArgs),
    /// Hardware attestation: fresh evidence for this node's key, offline verification, TPM enrolment.
    Attest(attest_cli::AttestArgs),
    /// The node's identity: its ed25519 public key and peer id (the key is created on first use).
    Id(JsonFlag),
    /// Run the node daemon in the foreground: libp2p (bitswap, DHT, jobs), HTTP API, gateway.
    Node(node_cli::NodeArgs),
    /// The running daemon's peers.
    #[command(subcommand)]
    Swarm(node_cli::SwarmCmd),
    /// Show or set config.json (swarm and API listen addresses, bootstrap peers, tee, …).
    Config(node_cli::ConfigArgs),
    /// Seal a file (data or a .wasm module) into the store as ciphertext; the key stays with
    /// this node's broker under the access policy given.
    Seal(seal_cli::SealArgs),
    /// Open a sealed object whose key this node's broker holds, or a sealed result with its
    /// recipient's key.
    Open(seal_cli::OpenArgs),
    /// Make a recipient key pair (X25519) for `vouch run --recipient`.
    Keygen(seal_cli::KeygenArgs),
    /// This node's key broker.
    #[command(subcommand)]
    Broker(seal_cli::BrokerCmd),
    /// End-to-end demonstration on the embedded store.
    Demo {
        /// The hospital and the lab: sealed records, a sealed module, two key brokers and a
        /// compute node, on one machine.
        #[arg(long)]
        confidential: bool,
    },
    /// Benchmarks that print ratios against anchors measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

#[derive(Args)]
struct JsonFlag {
    #[arg(long)]
    json: bool,
}

/// A failed verification (exit 1), as opposed to an error (exit 2).
#[derive(Debug)]
pub struct VerificationFailed(pub String);

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerificationFailed {}

fn run(cli: Cli) -> anyhow::Result<()> {
    let home = home::Home::from_env()?;
    match cli.command {
        Command::Add(a) => commands::add(&home, a),
        Command::Cat { path, timeout } => commands::cat(&home, &path, units::parse_duration(&timeout)?),
        Command::Get { path, output, timeout } => commands::get(&home, &path, output, units::parse_duration(&timeout)?),
        Command::Ls { path, json } => commands::ls(&home, &path, json),
        Command::Block(c) => commands::block(&home, c),
        Command::Dag(c) => commands::dag(&home, c),
        Command::Car(c) => commands::car(&home, c),
        Command::Pin(c) => commands::pin(&home, c),
        Command::Gc(j) => commands::gc(&home, j.json),
        Command::Repo(c) => commands::repo(&home, c),
        Command::Run(a) => jobs_cli::run(&home, a),
        Command::Receipt(c) => jobs_cli::receipt(&home, c),
        Command::Verify(a) => jobs_cli::verify(&home, a),
        Command::Attest(a) => attest_cli::run(&home, a),
        Command::Id(j) => commands::id(&home, j.json),
        Command::Node(a) => node_cli::node(&home, a),
        Command::Swarm(c) => node_cli::swarm(&home, c),
        Command::Config(a) => node_cli::config(&home, a),
        Command::Seal(a) => seal_cli::seal(&home, a),
        Command::Open(a) => seal_cli::open(&home, a),
        Command::Keygen(a) => seal_cli::keygen(a),
        Command::Broker(c) => seal_cli::broker(&home, c),
        Command::Demo { confidential: false } => demo::run(&home),
        Command::Demo { confidential: true } => demo_confidential::run(),
        Command::Bench(b) => bench::run(b),
    }
}

/// A clap usage error as one line: its message without the usage block and the help hint.
fn usage_error_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let mut line = String::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(l.strip_prefix("error: ").unwrap_or(l));
    }
    line
}

fn main() -> ExitCode {
    // Like `cat`, end quietly when stdout's reader goes away (`vouch cat … | head`) instead of
    // failing every later print.
    // SAFETY: setting a signal's disposition to the default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version (stdout, exit 0), and help for a bare `vouch`/`vouch block`
        // (stderr, exit 2): as clap prints them.
        Err(e) if !e.use_stderr() || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        // Usage errors: one `Error:` line and exit 2, as every other error.
        Err(e) => {
            eprintln!("Error: {}; try --help", usage_error_line(&e));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ");
            eprintln!("Error: {msg}");
            if e.downcast_ref::<VerificationFailed>().is_some() {
                ExitCode::from(1)
            } else if e.downcast_ref::<jobs_cli::JobFailed>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
