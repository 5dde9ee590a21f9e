//! The `probeforge` command line: argument parsing, logging, progress and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use probeforge::extract::{self, Selection};
use probeforge::kernel::KernelTree;

#[derive(Parser)]
#[command(name = "probeforge", version, about, long_about = None)]
struct Cli {
    /// More log output (-v, -vv); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a kernel header set says about its kernel, and which Falco drivers fit it.
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
struct InspectArgs {
    /// Header packages (.deb, .rpm, tarballs) unpacked together, or one unpacked directory.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Which kernel, when the inputs hold several.
    #[arg(long)]
    kernel_release: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Inspect(a) => inspect(a),
    }
}

fn inspect(a: InspectArgs) -> Result<ExitCode> {
    let staged = extract::Staged::new(&a.inputs, Selection::ProbeBuild, None)?;
    let k = KernelTree::find(staged.root(), a.kernel_release.as_deref())?;
    let support = k.driver_support();
    if a.json {
        let v = serde_json::json!({
            "kernel": &k,
            "uname": {"r": k.release, "v": k.uname_v, "m": k.uname_m()},
            "drivers": support,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let rel = |p: &std::path::Path| p.strip_prefix(&k.root).unwrap_or(p).display().to_string();
        println!("kernel release  {}", k.release);
        println!("uname -v        {}", k.uname_v.as_deref().unwrap_or("(not recorded in the headers)"));
        println!("kernel version  {}", k.kernel_version.as_deref().unwrap_or("(unknown)"));
        println!("uname -m        {}", k.uname_m());
        println!("endianness      {}", if k.big_endian { "big" } else { "little" });
        if let Some(os) = &k.os_release {
            println!("os-release      ID={} VERSION_ID={}", os.id, os.version_id.as_deref().unwrap_or("?"));
        }
        if let Some(c) = &k.compiler {
            println!("built with      {c}");
        }
        println!("objtree         {}", rel(&k.objtree));
        println!("srctree         {}", rel(&k.srctree));
        println!("config entries  {}", k.config.len());
        for s in support {
            if s.supported {
                println!("driver {:<12} yes", s.driver);
            } else {
                println!("driver {:<12} no: {}", s.driver, s.reasons.join("; "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
