//! The `probeforge` command line: argument parsing, logging, progress and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use probeforge::kernel::Arch;
use probeforge::patch::Catalog;
use probeforge::pipeline;
use probeforge::toolchain::Toolchain;
use probeforge::validate;
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
    /// Build the probe for one kernel from its header packages and a driver source.
    ///
    /// Example:
    ///   probeforge build --headers linux-headers-6.1.0-50-{common,amd64}_*.deb \
    ///       --driver-source falcosecurity-libs_0.20.0.orig.tar.gz --driver-version 8.0.0+driver -o out/
    Build(BuildArgs),
    /// Check a probe object: ELF shape, metadata, maps, programs, relocations.
    Validate(ValidateArgs),
}

#[derive(clap::Args)]
struct ToolchainArgs {
    /// clang to use (default: $CLANG, then clang on PATH).
    #[arg(long, env = "CLANG")]
    clang: Option<PathBuf>,
    /// llc to use (default: $LLC, then the llc beside clang).
    #[arg(long, env = "LLC")]
    llc: Option<PathBuf>,
    /// Refuse any clang/llc but this LLVM version ("14" or "14.0.6").
    #[arg(long)]
    require_llvm: Option<String>,
}

impl ToolchainArgs {
    fn find(&self) -> Result<Toolchain> {
        let tc = Toolchain::find(self.clang.as_deref(), self.llc.as_deref())?;
        if let Some(v) = &self.require_llvm {
            tc.require(v)?;
        }
        Ok(tc)
    }
}

#[derive(clap::Args)]
struct BuildArgs {
    /// Kernel header packages (.deb, .rpm, tarballs), unpacked together, or one directory.
    #[arg(long, required = true, num_args = 1..)]
    headers: Vec<PathBuf>,
    /// Which kernel, when the headers hold several.
    #[arg(long)]
    kernel_release: Option<String>,
    /// The driver: a falcosecurity/libs tree or tarball, or a dkms tree or package.
    #[arg(long)]
    driver_source: PathBuf,
    /// The driver version (e.g. 8.0.0+driver); read from dkms sources when omitted.
    #[arg(long)]
    driver_version: Option<String>,
    /// Falco's target id (debian, ubuntu-generic, amazonlinux2, ...); told from the headers
    /// when they say.
    #[arg(long)]
    target_id: Option<String>,
    /// The number after `#` in `uname -v` (default: from the headers, else 1).
    #[arg(long)]
    kernel_version: Option<String>,
    /// Refuse headers of another architecture (x86_64, aarch64).
    #[arg(long)]
    arch: Option<String>,
    /// Output directory; receives only the probe.
    #[arg(short, long, default_value = ".")]
    output: PathBuf,
    /// Directory for temporary trees (default: $TMPDIR).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Use the patches in this directory (with its index.json) instead of the built-in ones.
    #[arg(long)]
    patches: Option<PathBuf>,
    #[command(flatten)]
    toolchain: ToolchainArgs,
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ValidateArgs {
    /// The probe object.
    probe: PathBuf,
    /// The kernel release the probe must be for (`uname -r`).
    #[arg(long)]
    kernel_release: Option<String>,
    /// The driver version the probe must carry.
    #[arg(long)]
    driver_version: Option<String>,
    /// The architecture the probe must be for.
    #[arg(long)]
    arch: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
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
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
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
        Command::Build(a) => build(a),
        Command::Validate(a) => validate_cmd(a),
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

/// A usage or environment problem: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn parse_arch(s: &Option<String>) -> Result<Option<Arch>> {
    s.as_deref()
        .map(|a| {
            Arch::parse(a).ok_or_else(|| {
                UsageError(format!("unknown architecture `{a}` (x86_64, aarch64, s390x, ppc64le)")).into()
            })
        })
        .transpose()
}

fn build(a: BuildArgs) -> Result<ExitCode> {
    let tc = a.toolchain.find().map_err(|e| UsageError(format!("{e:#}")))?;
    let patches = match &a.patches {
        Some(d) => Catalog::from_dir(d).with_context(|| format!("patch directory `{}`", d.display()))?,
        None => Catalog::embedded(),
    };
    let req = pipeline::Request {
        headers: a.headers,
        kernel_release: a.kernel_release,
        driver_source: a.driver_source,
        driver_version: a.driver_version,
        target_id: a.target_id,
        kernel_version: a.kernel_version,
        arch: parse_arch(&a.arch)?,
        out_dir: a.output,
        scratch: a.scratch,
    };
    let out = pipeline::build(&req, &tc, &patches)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}  {}", out.sha256, out.path.display());
        let has: Vec<_> = out.configure.iter().filter(|c| c.passed).map(|c| c.module.as_str()).collect();
        eprintln!(
            "built for {} ({}), driver {}, configure: [{}], patches: [{}], clang {:.1}s + llc {:.1}s CPU",
            out.kernel.release,
            out.kernel.arch,
            out.driver_version,
            has.join(", "),
            out.patches.join(", "),
            out.timing.probe.clang_cpu.as_secs_f64(),
            out.timing.probe.llc_cpu.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn validate_cmd(a: ValidateArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&a.probe).with_context(|| format!("cannot read `{}`", a.probe.display()))?;
    let report = validate::validate(
        &bytes,
        &validate::Expect {
            kernel_release: a.kernel_release,
            driver_version: a.driver_version,
            arch: parse_arch(&a.arch)?,
            ..Default::default()
        },
    );
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for c in &report.checks {
            println!("{} {:<22} {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail);
        }
        println!(
            "{} programs, {} maps, kernel_version {:?}, probe_version {:?}",
            report.programs.len(),
            report.maps.len(),
            report.kernel_version.clone().unwrap_or_default(),
            report.probe_version.clone().unwrap_or_default()
        );
    }
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
