//! The `probeforge` command line: argument parsing, logging, progress and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use probeforge::extract::{self, Selection};
use probeforge::kernel::Arch;
use probeforge::kernel::KernelTree;
use probeforge::patch::Catalog;
use probeforge::pipeline;
use probeforge::toolchain::Toolchain;
use probeforge::validate;

#[derive(Parser)]
#[command(
    name = "probeforge",
    version,
    about,
    after_help = "Typical use:\n  probeforge list-kernels debian-bookworm --arch x86_64      what a distro offers\n  probeforge build --target debian --kernel latest -o out/   one probe, fetched and built\n  probeforge build-all debian-bookworm --repo probes/        the nightly job\n  probeforge verify out/*.o --kernel-image linux-image-*.deb prove it loads\n\nExit codes: 0 ok, 1 some work failed, 2 usage or environment error."
)]
struct Cli {
    /// More log output (-v, -vv); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(flatten)]
    net: NetArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct NetArgs {
    /// Download cache (default: $PROBEFORGE_CACHE, $XDG_CACHE_HOME/probeforge, ~/.cache/probeforge).
    #[arg(long, global = true, env = "PROBEFORGE_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Use only the cache; fail naming whatever is missing from it.
    #[arg(long, global = true)]
    offline: bool,
    /// Use this mirror for a catalog mirror name, e.g. --mirror debian=http://host/debian
    /// (also PROBEFORGE_MIRROR_DEBIAN=...). Wins over the host's APT sources and the catalog.
    #[arg(long = "mirror", global = true, value_name = "NAME=URL", value_parser = parse_kv)]
    mirrors: Vec<(String, String)>,
    /// A catalog of targets and mirrors replacing the built-in one (same JSON format).
    #[arg(long, global = true, env = "PROBEFORGE_CATALOG")]
    catalog: Option<PathBuf>,
    /// Trust these OpenPGP keys (binary keyring or armored keys) for repository metadata
    /// instead of the keys the catalog ships for each target (repeatable).
    #[arg(long = "keyring", global = true, value_name = "FILE")]
    keyrings: Vec<PathBuf>,
    /// Use repository metadata that is unsigned or not signed by a trusted key (warning each
    /// time); what is built from it says so in --provenance and index.json.
    #[arg(long, global = true)]
    allow_unsigned: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not NAME=URL"))
}

/// What commands that reach repositories share (resolved once, in the library).
type Net = probeforge::session::Session;

impl NetArgs {
    fn options(&self) -> probeforge::session::Options {
        probeforge::session::Options {
            cache_dir: self.cache_dir.clone(),
            offline: self.offline,
            mirrors: self.mirrors.clone(),
            catalog: self.catalog.clone(),
            keyrings: self.keyrings.clone(),
            allow_unsigned: self.allow_unsigned,
        }
    }

    fn open(&self) -> Result<Net> {
        Net::open(&self.options()).map_err(session_error)
    }
}

/// A session error as the CLI reports it: the user's fault is a usage error (exit 2).
fn session_error(e: probeforge::session::Error) -> anyhow::Error {
    if e.is_usage() {
        UsageError(e.to_string()).into()
    } else {
        e.into()
    }
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
    /// List the kernels a target's repositories offer, with their exact header packages.
    ///
    /// Example: probeforge list-kernels debian-bookworm --arch x86_64
    ListKernels(ListArgs),
    /// Build every kernel of the targets that the repository does not have yet, and publish.
    ///
    /// Lists (or reads --from) the kernels, drops those already published, downloads ahead
    /// while compiling in parallel, validates, and publishes into
    /// <repo>/<driver-version>/<arch>/falco_<target-id>_<release>_<version>.o with SHA256SUMS,
    /// index.json and INDEX.md. One kernel's failure is reported and the rest go on (exit 1).
    ///
    /// Example: probeforge build-all debian-bookworm debian-trixie --repo probes/ --only '^6\.1\.'
    BuildAll(BuildAllArgs),
    /// Is a probe published? Exit 0 present, 1 absent, 2 error.
    Exists(ExistsArgs),
    /// Prove probes work: boot their kernel under QEMU, run every program through that
    /// kernel's BPF verifier, then capture and decode the events of a small workload.
    ///
    /// The VM runs probeforge's own loader as /init (x86_64 guests under qemu-system-x86_64,
    /// arm64 under qemu-system-aarch64 with `-cpu max`, which boots 4k and 16k-page kernels).
    /// The loader's verdict leaves the VM over a channel of its own (x86: the isa-debugcon I/O
    /// port; arm64: semihosting), so a console that loses output (PREEMPT_RT under TCG) cannot
    /// cut it off; the serial console carries the kernel's messages and a summary for people.
    /// Events are decoded with the tables of the driver the probe was built from
    /// (--driver-source). Exit 0 when every probe loaded whole and its workload's events were
    /// seen, 1 otherwise. A guest that prints nothing is booted once more, then reported as a
    /// kernel that did not start.
    ///
    /// Example: probeforge verify out/falco_debian_6.1.0-50-amd64_1.o
    /// --kernel-image linux-image-6.1.0-50-amd64-unsigned_6.1.176-1_amd64.deb
    /// --driver-source falcosecurity-libs_0.20.0.orig.tar.gz
    Verify(VerifyArgs),
    /// Pinned LLVM toolchains: list, show, fetch.
    ///
    /// A probe's bytes depend on the exact clang/llc build. A pinned toolchain is a set of
    /// distro packages fixed by sha256, unpacked without root into the cache and run with its
    /// own loader and libraries, so the same probe comes out on any x86_64 Linux.
    #[command(subcommand)]
    Toolchain(ToolchainCmd),
    /// Check a published repository: every probe against its directory's SHA256SUMS and
    /// index.json (present, same digest, same size, listed once), and with --keyring every
    /// SHA256SUMS.asc. Exit 0 clean, 1 when anything does not match (each one named).
    ///
    /// --repair (a directory) rebuilds what its records say each probe was built from and puts
    /// it back only with the recorded digest; a file that does not match is moved to
    /// .probeforge/aside/, never deleted.
    ///
    /// Example: probeforge check --repo probes/ --keyring probes-signing-key.gpg
    Check(CheckArgs),
    /// Download and verify the header packages of one kernel.
    ///
    /// Example: probeforge fetch debian-bookworm latest -o headers/
    Fetch(FetchArgs),
    /// The Falco driver releases with a legacy eBPF probe: which Falco releases pin each, where
    /// its source comes from, and per Debian kernel line (5.10, 6.1, 6.12, 7.x; x86_64 and
    /// aarch64) whether it builds as is, builds with named driver-patches, or cannot and why.
    /// A cell not measured is shown as `-`.
    Drivers(DriversArgs),
}

#[derive(clap::Args)]
struct DriversArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Catalog targets. A distro's short name covers every supported release of it (`debian`:
    /// bullseye, bookworm, trixie with their updates, security and backports suites; `ubuntu`:
    /// jammy, noble); a release-named target one release (debian-bookworm, ubuntu-jammy,
    /// amazonlinux2023, ...). `--targets-only` lists them with their suites.
    targets: Vec<String>,
    /// Only this architecture (x86_64, aarch64); default: both.
    #[arg(long)]
    arch: Option<String>,
    /// Print the catalog's targets instead.
    #[arg(long)]
    targets_only: bool,
    /// Print JSON records instead of text.
    #[arg(long)]
    json: bool,
    /// Output format: text, json, or crawler (falcosecurity/kernel-crawler's list).
    #[arg(long, value_parser = ["text", "json", "crawler"], default_value = "text")]
    format: String,
}

#[derive(clap::Args)]
struct BuildAllArgs {
    /// Catalog targets (`debian` = every supported Debian release, debian-bookworm,
    /// amazonlinux2, ...: see `list-kernels --targets-only`); not needed with --from.
    targets: Vec<String>,
    /// Take the kernel list from a kernel-crawler JSON file instead of listing.
    #[arg(long)]
    from: Option<PathBuf>,
    /// The repository: a directory (published into), or an HTTP base URL (only looked up;
    /// new probes then go to --output).
    #[arg(long)]
    repo: String,
    /// Where new probes go when --repo is a URL.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Only kernel releases matching this regular expression.
    #[arg(long)]
    only: Option<String>,
    /// Only this architecture (x86_64, aarch64); default: both.
    #[arg(long)]
    arch: Option<String>,
    /// The driver version (default: the --driver-source's own, else the newest driver with a
    /// legacy probe, 9.1.0+driver).
    #[arg(long)]
    driver_version: Option<String>,
    /// The driver source (default: downloaded for --driver-version).
    #[arg(long)]
    driver_source: Option<PathBuf>,
    /// Kernels compiled at once (default: the number of CPUs).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Prove each probe loads in its own kernel (QEMU) before publishing it; the kernel image
    /// comes from the target's repository.
    #[arg(long)]
    verify: bool,
    /// Directory for temporary trees (default: $TMPDIR, else /dev/shm when it has room,
    /// else /tmp).
    #[arg(long)]
    scratch: Option<PathBuf>,
    #[command(flatten)]
    toolchain: ToolchainArgs,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
    /// Sign every SHA256SUMS with this OpenPGP secret key (binary or armored; a passphrase
    /// from PROBEFORGE_SIGN_PASSPHRASE): a detached, armored `SHA256SUMS.asc` beside it.
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The repository: a directory or an HTTP base URL.
    #[arg(long)]
    repo: String,
    /// Rebuild what does not match from its recorded inputs; move bad files aside.
    #[arg(long)]
    repair: bool,
    /// With --repair: the driver source to rebuild with, when its digest is the recorded one
    /// (default: the cache's copy, else the known copy of that digest).
    #[arg(long)]
    driver_source: Option<PathBuf>,
    /// With --repair: kernels compiled at once.
    #[arg(short, long)]
    jobs: Option<usize>,
    #[arg(long)]
    scratch: Option<PathBuf>,
    #[command(flatten)]
    toolchain: ToolchainArgs,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Probe objects, all for the kernel of --kernel-image.
    #[arg(required = true)]
    probes: Vec<PathBuf>,
    /// The kernel: a vmlinuz, or the package holding it (Debian linux-image-R[-unsigned],
    /// 7.x linux-binary[-unsigned]-R, RPM kernel-core or kernel). Given a meta-package (7.x
    /// linux-image-R), the package it depends on is fetched from the catalog's APT targets
    /// (through the cache; --offline uses only the cache). Default: found in the catalog for
    /// the kernel the probe's name says (`falco_<target-id>_<release>_<version>.o`), in
    /// --target or every target with that id, as `build --verify` does.
    #[arg(long)]
    kernel_image: Option<PathBuf>,
    /// Where to look for the kernel image when --kernel-image is not given (e.g.
    /// debian-bookworm); default: every catalog target with the probe's target id.
    #[arg(long)]
    target: Option<String>,
    /// Extra kernel command line (use the target's own: lockdown changes what loads).
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Kernel lockdown mode in the VM, as the target runs (Secure Boot machines often run
    /// `integrity`; `confidentiality` forbids reading kernel memory, which the probe needs).
    #[arg(long, value_parser = ["none", "integrity", "confidentiality"])]
    lockdown: Option<String>,
    /// Give up on a VM after this many seconds (on a kernel that prints nothing, after 60
    /// seconds or this, whichever is less; it is booted once more before the error).
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// QEMU accelerator: auto (KVM when it can boot a guest here, else TCG), kvm, or tcg.
    #[arg(long, default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
    accel: String,
    /// The driver source the probes were built from (libs tree or tarball, dkms tree or
    /// package): its event tables let the VM capture and decode real events. Repeat it for
    /// probes of several drivers: each probe takes the source with its probe_version, else
    /// its API and schema versions (default: the source of each probe_version, downloaded).
    #[arg(long)]
    driver_source: Vec<PathBuf>,
    /// Only prove the programs load; capture no events.
    #[arg(long)]
    no_events: bool,
    /// Prove the probes with Falco's real userspace instead of probeforge's loader: Debian's
    /// sysdig, built on libscap, runs `sysdig --bpf=<probe>` in the VM over a small workload,
    /// and the verdict needs the workload's execve (exe and arguments) and openat (path)
    /// among the events sysdig prints. `sysdig` takes the Debian suite whose libscap reads the
    /// probe's driver (its API and schema versions): bookworm's sysdig 0.29.3 for the 2022
    /// falcosecurity-scap-dkms driver (its libscap maps perf rings in a way 6.1 and the later
    /// bullseye-security 5.10 kernels refuse: use bullseye's point-release 5.10), forky's 0.41.4 for libs 0.23.2 = 9.1.0+driver; `sysdig=<suite>` picks
    /// one. sysdig and its shared libraries come from that suite's packages (the digests its
    /// signed index lists; through the cache), and run chrooted in the VM. --json adds
    /// `userspace` (suite, packages, digests) and, per probe, `sysdig` (the events, or the
    /// failure: probe_for_another_kernel, userspace_kernel_mismatch, events_missing, ...).
    #[arg(long, value_name = "sysdig[=SUITE]", conflicts_with = "no_events")]
    userspace: Option<probeforge::verify::userspace::Request>,
    #[command(flatten)]
    toolchain: ToolchainArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ToolchainCmd {
    /// The pinned toolchains this probeforge knows.
    List,
    /// A toolchain's packages and digests, and whether it is in the cache.
    Show { name: String },
    /// Download, verify and unpack a pinned toolchain into the cache.
    Fetch {
        #[arg(default_value = "llvm-14-debian12")]
        name: String,
    },
}

#[derive(clap::Args)]
struct ExistsArgs {
    #[arg(long)]
    repo: String,
    #[arg(long)]
    driver_version: String,
    #[arg(long)]
    target_id: String,
    #[arg(long)]
    kernel_release: String,
    #[arg(long)]
    kernel_version: String,
    #[arg(long, default_value = "x86_64")]
    arch: String,
}

#[derive(clap::Args)]
struct FetchArgs {
    target: String,
    /// A kernel release (`uname -r`), or `latest`.
    kernel: String,
    #[arg(long, default_value = "x86_64")]
    arch: String,
    /// Copy the verified packages here (default: just report their cache paths).
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ToolchainArgs {
    /// The clang/llc to build with: `auto` (default: the host's, found as below; when the host
    /// has no usable pair, the pinned toolchain for this machine's arch, fetched once into the
    /// cache), `host` (only the host's; fails naming what is missing), the name of a pinned
    /// toolchain (`probeforge toolchain list`; downloaded into the cache on first use and run
    /// with its own loader and libraries), or the path of a toolchain manifest file.
    #[arg(long, default_value = "auto")]
    toolchain: String,
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

/// A spinner on a terminal (none in a pipe or a CI log).
fn spinner(msg: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal().then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(msg.to_owned());
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    })
}

fn manifest_for(name: &str) -> Result<probeforge::toolchain::Manifest> {
    if let Some(m) = probeforge::toolchain::Manifest::named(name) {
        return Ok(m);
    }
    let p = std::path::Path::new(name);
    if p.is_file() {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read `{name}`"))?;
        return serde_json::from_str(&text)
            .map_err(|e| UsageError(format!("toolchain manifest `{name}`: {e}")).into());
    }
    let names: Vec<String> = probeforge::toolchain::Manifest::embedded()
        .into_iter()
        .map(|m| m.name)
        .collect();
    Err(UsageError(format!(
        "unknown toolchain `{name}` (pinned: {}; or `host`, or a manifest file)",
        names.join(", ")
    ))
    .into())
}

impl ToolchainArgs {
    fn find(&self, net: &NetArgs) -> Result<Toolchain> {
        let explicit = self.clang.is_some() || self.llc.is_some();
        let tc = if self.toolchain == "host" || self.toolchain == "auto" && explicit {
            Toolchain::find(self.clang.as_deref(), self.llc.as_deref())?
        } else if self.toolchain == "auto" {
            match Toolchain::find(None, None) {
                Ok(tc) => tc,
                Err(why) => {
                    let m = probeforge::toolchain::Manifest::for_host().ok_or_else(|| {
                        UsageError(format!(
                            "{why}; and no pinned toolchain runs on {} (see `probeforge toolchain list`)",
                            Arch::host().map_or("this machine".into(), |a| a.to_string())
                        ))
                    })?;
                    let n = net.open()?;
                    let mirror = n.mirrors.resolve(&n.catalog, &m.mirror)?;
                    let cached =
                        probeforge::toolchain::root_in_cache(&m, &n.client.config().cache_dir)
                            .join(".complete")
                            .is_file();
                    eprintln!(
                        "no usable clang/llc on this host ({why}): building with the pinned toolchain `{}` (LLVM {}){}",
                        m.name,
                        m.llvm_version,
                        if cached { "" } else { ", fetching it into the cache once" }
                    );
                    let spinner = spinner(&format!("fetching toolchain {}", m.name));
                    let root = probeforge::toolchain::fetch(&m, &n.client, &mirror);
                    if let Some(s) = spinner {
                        s.finish_and_clear();
                    }
                    Toolchain::pinned(&m, &root?)?
                }
            }
        } else {
            if self.clang.is_some() || self.llc.is_some() {
                return Err(UsageError(format!(
                    "--toolchain {} pins clang and llc; it cannot be combined with --clang/--llc or CLANG/LLC",
                    self.toolchain
                )).into());
            }
            let m = manifest_for(&self.toolchain)?;
            let n = net.open()?;
            let mirror = n.mirrors.resolve(&n.catalog, &m.mirror)?;
            let root = probeforge::toolchain::fetch(&m, &n.client, &mirror)?;
            Toolchain::pinned(&m, &root)?
        };
        if let Some(v) = &self.require_llvm {
            tc.require(v)?;
        }
        Ok(tc)
    }
}

#[derive(clap::Args)]
struct BuildArgs {
    /// Kernel header packages (.deb, .rpm, tarballs), unpacked together, or one directory.
    #[arg(long, num_args = 1.., required_unless_present_any = ["target", "from"], conflicts_with = "target")]
    headers: Vec<PathBuf>,
    /// Fetch the headers from this catalog target's repositories instead (with --kernel):
    /// `debian` (every supported release), `debian-bookworm`, `ubuntu-jammy`, ...
    #[arg(long)]
    target: Option<String>,
    /// With --target or --from: the kernel release, or `latest`.
    #[arg(long, default_value = "latest")]
    kernel: String,
    /// Take the kernel from a kernel-crawler JSON list (with --kernel).
    #[arg(long, conflicts_with_all = ["target", "headers"])]
    from: Option<PathBuf>,
    /// Which kernel, when the headers hold several.
    #[arg(long)]
    kernel_release: Option<String>,
    /// The driver: a falcosecurity/libs tree or tarball, or a dkms tree or package.
    /// Default: download the source of --driver-version.
    #[arg(long)]
    driver_source: Option<PathBuf>,
    /// The driver version (e.g. 8.0.0+driver). Default: what the --driver-source says (a known
    /// copy's digest, a libs archive's top folder, a dkms tree's version mapped to its driver
    /// release), else the newest driver with a legacy probe (9.1.0+driver).
    #[arg(long)]
    driver_version: Option<String>,
    /// Base URL of falcosecurity/libs archives (GitHub's by default).
    #[arg(long, env = "PROBEFORGE_DRIVER_ARCHIVE")]
    driver_archive: Option<String>,
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
    /// Directory for temporary trees (default: $TMPDIR, else /dev/shm when it has room,
    /// else /tmp).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Use the patches in this directory (with its index.json) instead of the built-in ones.
    #[arg(long)]
    patches: Option<PathBuf>,
    /// Write a provenance statement (inputs with digests, toolchain, flags, patches, output
    /// digest) to this file.
    #[arg(long)]
    provenance: Option<PathBuf>,
    /// Then prove the probe loads: boot its kernel under QEMU and run every program through
    /// the verifier. The kernel image comes from --kernel-image, or from the target's
    /// repository (Debian: linux-image-<release>-unsigned).
    #[arg(long)]
    verify: bool,
    /// The kernel image for --verify (a vmlinuz or a linux-image package).
    #[arg(long, requires = "verify")]
    kernel_image: Option<PathBuf>,
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
    /// Also print these kernel config values (e.g. --config BPF_SYSCALL --config HZ).
    #[arg(long = "config", value_name = "CONFIG_NAME")]
    configs: Vec<String>,
    /// Unpack every file, not only what a probe build reads (slower; for a full tree).
    #[arg(long)]
    all_files: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // A closed pipe (`probeforge list-kernels ... | head`) ends us quietly, as for any
    // command-line tool, instead of a panic on the next print.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
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
            let usage = e.downcast_ref::<UsageError>().is_some()
                || matches!(
                    e.downcast_ref::<probeforge::repo::Error>(),
                    Some(
                        probeforge::repo::Error::NoSuchKernel { .. }
                            | probeforge::repo::Error::Keys { .. }
                    )
                );
            if usage {
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
    // Colour only on a terminal, and never under NO_COLOR (https://no-color.org): a CI log or
    // a pipe gets plain text.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .without_time()
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Inspect(a) => inspect(a),
        Command::Build(a) => build(a, &cli.net),
        Command::Validate(a) => validate_cmd(a),
        Command::ListKernels(a) => list_kernels(a, &cli.net),
        Command::Fetch(a) => fetch(a, &cli.net),
        Command::Drivers(a) => drivers_cmd(a),
        Command::BuildAll(a) => build_all(a, &cli.net),
        Command::Exists(a) => exists(a, &cli.net),
        Command::Toolchain(c) => toolchain_cmd(c, &cli.net),
        Command::Verify(a) => verify_cmd(a, &cli.net),
        Command::Check(a) => check_cmd(a, &cli.net),
    }
}

fn check_cmd(a: CheckArgs, net_args: &NetArgs) -> Result<ExitCode> {
    use probeforge::check;
    let url = check::is_url(&a.repo);
    if !url {
        need_files("repository", [&PathBuf::from(&a.repo)])?;
    }
    if a.repair && url {
        return Err(UsageError(check::Error::RepairRemote(a.repo.clone()).to_string()).into());
    }
    need_files("driver source", &a.driver_source)?;
    let mut keyring: Option<probeforge::trust::Keyring> = None;
    for k in &net_args.keyrings {
        need_files("keyring", [k])?;
        let one = probeforge::trust::Keyring::parse(&std::fs::read(k)?, &k.display().to_string())
            .map_err(|e| UsageError(e.to_string()))?;
        keyring.get_or_insert_with(Default::default).extend(one);
    }
    let net = net_args.open()?;
    let found = check::check(&a.repo, Some(&net.client), keyring.as_ref())?;
    let mut repairs = Vec::new();
    let mut report = found.clone();
    if a.repair && !found.problems.is_empty() {
        let tc = a
            .toolchain
            .find(net_args)
            .map_err(|e| UsageError(format!("{e:#}")))?;
        let lister = net.lister();
        let env = check::RepairEnv {
            lister: &lister,
            toolchain: &tc,
            driver_source: a.driver_source.clone(),
            jobs: a
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            scratch: a.scratch.clone(),
        };
        repairs = check::repair(std::path::Path::new(&a.repo), &found, &env)?;
        report = check::check(&a.repo, Some(&net.client), keyring.as_ref())?;
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if a.repair {
            v["found"] = serde_json::to_value(&found.problems)?;
            v["repairs"] = serde_json::to_value(&repairs)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for p in &found.problems {
            println!("{:?}: {p}", p.kind);
        }
        for r in &repairs {
            let aside = r
                .aside
                .as_ref()
                .map(|p| format!(" (kept: {})", p.display()));
            println!(
                "{} {}: {}{}",
                r.action,
                r.path,
                r.detail,
                aside.unwrap_or_default()
            );
        }
        for (dir, s) in &report.signatures {
            if s != "absent" {
                println!("signature of {dir}/SHA256SUMS: {s}");
            }
        }
        println!(
            "{} probes, {} problems{}",
            report.probes,
            report.problems.len(),
            if a.repair { " left after --repair" } else { "" }
        );
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn inspect(a: InspectArgs) -> Result<ExitCode> {
    need_files("input", &a.inputs)?;
    let selection = if a.all_files {
        Selection::Everything
    } else {
        Selection::ProbeBuild
    };
    let staged = extract::Staged::new(&a.inputs, selection, None)?;
    let k = KernelTree::find(staged.root(), a.kernel_release.as_deref())?;
    let support = k.driver_support();
    if a.json {
        let config: serde_json::Map<String, serde_json::Value> = a
            .configs
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    k.config
                        .get(c)
                        .map_or(serde_json::Value::Null, |v| v.into()),
                )
            })
            .collect();
        let v = serde_json::json!({
            "kernel": &k,
            "uname": {"r": k.release, "v": k.uname_v, "m": k.uname_m()},
            "drivers": support,
            "config": config,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let rel = |p: &std::path::Path| p.strip_prefix(&k.root).unwrap_or(p).display().to_string();
        println!("kernel release  {}", k.release);
        println!(
            "uname -v        {}",
            k.uname_v
                .as_deref()
                .unwrap_or("(not recorded in the headers)")
        );
        println!(
            "kernel version  {}",
            k.kernel_version.as_deref().unwrap_or("(unknown)")
        );
        println!("uname -m        {}", k.uname_m());
        println!(
            "endianness      {}",
            if k.big_endian { "big" } else { "little" }
        );
        if let Some(os) = &k.os_release {
            println!(
                "os-release      ID={} VERSION_ID={}",
                os.id,
                os.version_id.as_deref().unwrap_or("?")
            );
        }
        if let Some(c) = &k.compiler {
            println!("built with      {c}");
        }
        println!("objtree         {}", rel(&k.objtree));
        println!("srctree         {}", rel(&k.srctree));
        println!("config entries  {}", k.config.len());
        for c in &a.configs {
            println!("  {c} = {}", k.config.get(c).unwrap_or("(not set)"));
        }
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

/// Says which newer kernels `latest` passed over because the mirror does not serve them.
fn report_passed_over(passed_over: &[probeforge::repo::Error]) {
    let Some(first) = passed_over.first() else {
        return;
    };
    eprintln!(
        "warning: `latest` passed over {} newer kernel(s) that this mirror does not serve; the newest: {first}{}",
        passed_over.len(),
        if passed_over.len() > 1 { " (-v names each)" } else { "" }
    );
    for e in &passed_over[1..] {
        tracing::info!("passed over: {e}");
    }
}

/// Input files named on the command line must exist: a missing one is a usage error (exit 2).
fn need_files<'a>(what: &str, paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<()> {
    probeforge::session::need_files(what, paths).map_err(session_error)
}

/// A regular expression as the plain text a person typed into it (`^6\.1\.` -> `6.1.`), to
/// find the releases it was probably meant to match.
fn regex_text(re: &str) -> String {
    let mut out = String::new();
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '^' | '$' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {}
            c => out.push(c),
        }
    }
    out
}

fn parse_arch(s: &Option<String>) -> Result<Option<Arch>> {
    s.as_deref()
        .map(|a| {
            Arch::parse(a).ok_or_else(|| {
                UsageError(format!(
                    "unknown architecture `{a}` (x86_64, aarch64, s390x, ppc64le)"
                ))
                .into()
            })
        })
        .transpose()
}

fn build(a: BuildArgs, net: &NetArgs) -> Result<ExitCode> {
    let tc = a
        .toolchain
        .find(net)
        .map_err(|e| UsageError(format!("{e:#}")))?;
    need_files("header package", &a.headers)?;
    need_files("driver source", &a.driver_source)?;
    need_files("kernel list", &a.from)?;
    need_files("kernel image", &a.kernel_image)?;
    let arch = parse_arch(&a.arch)?;
    let need_net = a.target.is_some() || a.from.is_some() || a.driver_source.is_none();
    let net = if need_net { Some(net.open()?) } else { None };
    let mut unsigned_metadata = false;
    let mut header_digests = Vec::new();
    let (headers, kernel_release, target_id, kernel_version) = match &net {
        Some(net) if a.target.is_some() || a.from.is_some() => {
            let got = net
                .kernel(&probeforge::session::KernelSpec {
                    target: a.target.clone(),
                    from: a.from.clone(),
                    kernel: a.kernel.clone(),
                    arch,
                })
                .map_err(session_error)?;
            report_passed_over(&got.passed_over);
            header_digests = got.header_digests();
            let k = got.record;
            unsigned_metadata = k.unsigned_metadata;
            if a.target.is_some() {
                eprintln!(
                    "kernel {} ({}) from {}: {} header packages",
                    k.release,
                    k.arch,
                    k.origin,
                    k.packages.len()
                );
            }
            (
                got.headers,
                Some(k.release),
                a.target_id.clone().or(Some(k.target_id)),
                a.kernel_version.clone().or(Some(k.kernel_version)),
            )
        }
        _ => (
            a.headers.clone(),
            a.kernel_release.clone(),
            a.target_id.clone(),
            a.kernel_version.clone(),
        ),
    };
    let (driver_source, driver_version) = match &net {
        Some(net) => net
            .driver(
                a.driver_source.as_deref(),
                a.driver_version.as_deref(),
                a.driver_archive.as_deref(),
            )
            .map_err(session_error)?,
        None => (
            a.driver_source
                .clone()
                .expect("no network only with a driver source"),
            a.driver_version.clone(),
        ),
    };
    let patches = match &a.patches {
        Some(d) => {
            Catalog::from_dir(d).with_context(|| format!("patch directory `{}`", d.display()))?
        }
        None => Catalog::embedded(),
    };
    let req = pipeline::Request {
        headers,
        kernel_release,
        driver_source,
        driver_version,
        target_id,
        kernel_version,
        arch,
        out_dir: a.output,
        scratch: a.scratch,
        driver_digest: None,
        header_digests,
    };
    let out = pipeline::build(&req, &tc, &patches)?;
    if a.verify {
        let image = match (&a.kernel_image, &a.target) {
            (Some(i), _) => i.clone(),
            (None, Some(t)) => {
                let net = net.as_ref().expect("opened for --target");
                kernel_image_for(net, t, out.kernel.arch, &out.kernel.release)?
            }
            (None, None) => {
                return Err(UsageError(
                    "--verify needs --kernel-image when the headers are files".into(),
                )
                .into())
            }
        };
        let bytes = std::fs::read(&out.path)?;
        let (_, tables) = probeforge::verify::events::tables_from_source(
            &req.driver_source,
            out.kernel.arch,
            &tc,
            &req.scratch
                .clone()
                .unwrap_or_else(pipeline::default_scratch),
        )
        .map_err(|e| anyhow::anyhow!(e))
        .context("the driver's event tables, for --verify")?;
        let verdict = verify_one(&image, &out.file_name, bytes, Some(tables))?;
        eprintln!("{verdict}");
        if !verdict.starts_with("ok") {
            return Ok(ExitCode::from(1));
        }
    }
    if let Some(p) = &a.provenance {
        let mut v = pipeline::provenance(&out, &tc);
        if unsigned_metadata {
            // Say it where a reviewer looks: the headers' listing was not signed by a key
            // probeforge trusts (--allow-unsigned, or a kernel-crawler list).
            v["predicate"]["repository_metadata"] = serde_json::json!({"signed": false});
        }
        probeforge::base::write_atomic(p, &serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("cannot write `{}`", p.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}  {}", out.sha256, out.path.display());
        let has: Vec<_> = out
            .configure
            .iter()
            .filter(|c| c.passed)
            .map(|c| c.module.as_str())
            .collect();
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

fn drivers_cmd(a: DriversArgs) -> Result<ExitCode> {
    let table = probeforge::releases::Table::embedded();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&table)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in &table.releases {
        let k = &r.known;
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(", ")
            }
        };
        println!(
            "{}{}  API {}, schema {}; Falco {}; libs {}",
            k.version,
            if r.default { " (default)" } else { "" },
            k.api,
            k.schema,
            list(&k.falco),
            list(&k.libs)
        );
        let mut sources = vec!["GitHub archive".to_owned()];
        sources.extend(k.sources.iter().map(|s| {
            let at = s.path.as_deref().or(s.url.as_deref()).unwrap_or("?");
            let name = at.rsplit('/').next().unwrap_or(at);
            format!(
                "{} {name} (sha256 {})",
                s.mirror.as_deref().unwrap_or("url"),
                &s.sha256[..12]
            )
        }));
        println!("  source: {}", sources.join("; "));
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let cells: Vec<String> = probeforge::releases::LINES
                .iter()
                .map(|line| {
                    let o = table.expected(&k.version, line, arch);
                    format!("{line} {}", o.map_or("-".to_owned(), |o| o.to_string()))
                })
                .collect();
            println!("  {:<8} {}", arch.uname_m(), cells.join(" | "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn validate_cmd(a: ValidateArgs) -> Result<ExitCode> {
    need_files("probe", [&a.probe])?;
    let bytes =
        std::fs::read(&a.probe).with_context(|| format!("cannot read `{}`", a.probe.display()))?;
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
            println!(
                "{} {:<22} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        println!(
            "{} programs, {} maps, kernel_version {:?}, probe_version {:?}",
            report.programs.len(),
            report.maps.len(),
            report.kernel_version.clone().unwrap_or_default(),
            report.probe_version.clone().unwrap_or_default()
        );
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn arches(a: &Option<String>) -> Result<Vec<Arch>> {
    Ok(match parse_arch(a)? {
        Some(a) => vec![a],
        None => vec![Arch::X86_64, Arch::Aarch64],
    })
}

fn list_kernels(a: ListArgs, net: &NetArgs) -> Result<ExitCode> {
    let net = net.open()?;
    if a.targets_only || a.targets.is_empty() {
        for t in &net.catalog.targets {
            println!(
                "{:<18} {:<4} {}",
                t.name,
                t.kind,
                t.suites
                    .iter()
                    .map(|s| s.suite.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        return Ok(if a.targets.is_empty() && !a.targets_only {
            eprintln!("give one or more targets to list their kernels");
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        });
    }
    let arches = arches(&a.arch)?;
    let (all, failed) = list_targets(&net, &a.targets, &arches)?;
    if a.format == "crawler" {
        println!(
            "{}",
            serde_json::to_string_pretty(&probeforge::repo::crawler::write(&all))?
        );
    } else if a.json || a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for k in &all {
            let size: u64 = k.packages.iter().map(|p| p.size).sum();
            println!(
                "{:<16} {:<8} {:<32} #{:<4} {:<22} {} packages, {:.1} MiB",
                k.target,
                k.arch,
                k.release,
                k.kernel_version,
                k.origin,
                k.packages.len(),
                size as f64 / 1048576.0
            );
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn fetch(a: FetchArgs, net: &NetArgs) -> Result<ExitCode> {
    let net = net.open()?;
    let arch = parse_arch(&Some(a.arch.clone()))?.unwrap_or(Arch::X86_64);
    let got = net
        .lister()
        .fetch_kernel(&a.target, arch, &a.kernel, false)?;
    report_passed_over(&got.unavailable);
    let (k, files) = (got.kernel, got.files);
    let mut out = Vec::new();
    for (p, f) in k.packages.iter().zip(&files) {
        let dest = match &a.output {
            Some(dir) => {
                let name = p.url.rsplit('/').next().unwrap_or(&p.name);
                let d = dir.join(name);
                let bytes = std::fs::read(f)?;
                probeforge::base::write_atomic(&d, &bytes)
                    .with_context(|| format!("cannot write `{}`", d.display()))?;
                d
            }
            None => f.clone(),
        };
        out.push(serde_json::json!({"name": p.name, "version": p.version, "sha256": p.sha256, "path": dest}));
        if !a.json {
            println!("{}  {}", p.sha256, dest.display());
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"kernel": k, "files": out}))?
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Progress for a batch: bars on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl probeforge::farm::Reporter for Progress {
    fn planned(&self, to_build: usize, skipped: usize) {
        if let Some(b) = &self.bar {
            b.set_length(to_build as u64);
            b.println(format!(
                "{to_build} kernels to build, {skipped} already published"
            ));
        } else if !self.quiet {
            eprintln!("{to_build} kernels to build, {skipped} already published");
        }
    }
    fn phase(&self, release: &str, phase: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{phase} {release}"));
        }
    }
    fn finished(&self, r: &probeforge::farm::KernelResult) {
        use probeforge::farm::Status;
        if r.status == Status::Skipped {
            return;
        }
        let line = match &r.error {
            Some(e) if r.status == Status::Unavailable => format!(
                "UNAVAIL {} {}: {}",
                r.arch,
                r.release,
                e.lines().next().unwrap_or("")
            ),
            Some(e) => format!(
                "FAILED  {} {}: {}",
                r.arch,
                r.release,
                e.lines().next().unwrap_or("")
            ),
            None => format!(
                "{:<8}{} {} ({:.1}s)",
                format!("{:?}", r.status).to_lowercase(),
                r.arch,
                r.release,
                r.seconds
            ),
        };
        match &self.bar {
            Some(b) => {
                b.println(line);
                b.inc(1);
            }
            None if !self.quiet => eprintln!("{line}"),
            None => {}
        }
    }
}

fn build_all(a: BuildAllArgs, net_args: &NetArgs) -> Result<ExitCode> {
    need_files("driver source", &a.driver_source)?;
    need_files("kernel list", &a.from)?;
    use probeforge::farm::{Farm, Status};
    use probeforge::publish::{LocalRepo, Repo};
    use std::io::IsTerminal;
    let tc = a
        .toolchain
        .find(net_args)
        .map_err(|e| UsageError(format!("{e:#}")))?;
    let net = net_args.open()?;
    let repo = Repo::parse(&a.repo);
    let publish_to = match (&repo, &a.output) {
        (Repo::Local(l), None) => l.clone(),
        (_, Some(o)) => LocalRepo::new(o),
        (Repo::Http(_), None) => {
            return Err(UsageError(
                "--repo is a URL: say where new probes go with --output DIR".into(),
            )
            .into())
        }
        (Repo::Github(_), None) => {
            return Err(UsageError(
                "--repo is GitHub Releases: give a local staging directory with --output DIR"
                    .into(),
            )
            .into())
        }
    };
    let publish_to = match &a.sign_key {
        Some(k) => {
            need_files("signing key", [k])?;
            let pass = std::env::var("PROBEFORGE_SIGN_PASSPHRASE").unwrap_or_default();
            let key = probeforge::trust::SigningKey::parse(
                &std::fs::read(k)?,
                &k.display().to_string(),
                &pass,
            )
            .map_err(|e| UsageError(e.to_string()))?;
            publish_to.with_signer(key)
        }
        None => publish_to,
    };
    let only = a
        .only
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| UsageError(format!("--only: {e}")))?;
    let arches = arches(&a.arch)?;
    let mut kernels = Vec::new();
    if let Some(f) = &a.from {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))?;
        kernels = probeforge::repo::crawler::read(&text, arches[0])
            .map_err(|e| UsageError(format!("`{}`: {e}", f.display())))?;
        kernels.retain(|k| arches.contains(&k.arch));
    } else if a.targets.is_empty() {
        return Err(UsageError("give targets, or --from a kernel-crawler list".into()).into());
    }
    let (listed, list_failed) = list_targets(&net, &a.targets, &arches)?;
    kernels.extend(listed);
    if let Some(re) = &only {
        // A filter that matches nothing of a source is a mistake to name, not "0 to build".
        let from = a.from.iter().map(|f| (f.display().to_string(), true));
        for (source, is_file) in from.chain(a.targets.iter().map(|t| (t.clone(), false))) {
            let releases: Vec<&str> = kernels
                .iter()
                .filter(|k| match is_file {
                    true => !a.targets.contains(&k.target),
                    false => k.target == source,
                })
                .map(|k| k.release.as_str())
                .collect();
            if !releases.is_empty() && !releases.iter().any(|r| re.is_match(r)) {
                let closest = probeforge::repo::closest(&regex_text(re.as_str()), &releases, 3);
                return Err(UsageError(format!(
                    "--only `{re}` matches none of the {} kernels of `{source}` (closest: {})",
                    releases.len(),
                    closest.join(", ")
                ))
                .into());
            }
        }
        kernels.retain(|k| re.is_match(&k.release));
    }
    let cat = probeforge::driver::SourceCatalog::embedded();
    let mut version = a
        .driver_version
        .clone()
        .unwrap_or_else(|| cat.default_version.clone());
    let source = match &a.driver_source {
        Some(p) => p.clone(),
        None => net.driver_source(&version, None)?,
    };
    let scratch_base = a.scratch.clone().unwrap_or_else(pipeline::default_scratch);
    let batch = tempfile::Builder::new()
        .prefix("probeforge-batch-")
        .tempdir_in(&scratch_base)
        .with_context(|| format!("cannot create a directory in `{}`", scratch_base.display()))?;
    let (driver_dir, driver_digest) =
        probeforge::farm::prepare_driver_source(&source, batch.path())?;
    // The version the probes are published under: given, else what the source says it is.
    let mut found = probeforge::driver::DriverSource::find(&driver_dir)?;
    found.identify(&driver_digest);
    let given = match &a.driver_source {
        Some(_) => a.driver_version.clone(),
        None => Some(version.clone()),
    };
    version = found.version(given.as_deref())?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let lister = net.lister();
    let patches = Catalog::embedded();
    // The driver's event tables, once per arch of the batch, for the VM's event capture.
    let mut tables = std::collections::BTreeMap::new();
    if a.verify {
        let batch_arches: std::collections::BTreeSet<Arch> =
            kernels.iter().map(|k| k.arch).collect();
        for &arch in &batch_arches {
            let work = batch.path().join(format!("tables-{}", arch.uname_m()));
            std::fs::create_dir_all(&work)?;
            let t = probeforge::verify::events::driver_tables(&driver_dir, arch, &tc, &work)
                .context("the driver's event tables, for --verify")?;
            tables.insert(arch, t);
        }
    }
    let verifier =
        |k: &probeforge::repo::KernelRecord, file: &str, bytes: &[u8]| -> Result<String, String> {
            let image = kernel_image_for(&net, &k.target, k.arch, &k.release)
                .map_err(|e| format!("{e:#}"))?;
            let verdict = verify_one(&image, file, bytes.to_vec(), tables.get(&k.arch).cloned())
                .map_err(|e| format!("{e:#}"))?;
            if verdict.starts_with("ok") {
                Ok(verdict)
            } else {
                Err(verdict)
            }
        };
    let farm = Farm {
        verify: if a.verify { Some(&verifier) } else { None },
        lister: &lister,
        repo: &repo,
        publish_to: &publish_to,
        driver_dir,
        driver_version: version.clone(),
        driver_digest,
        toolchain: &tc,
        patches: &patches,
        jobs,
        scratch: a.scratch.clone(),
        cache_dir: net.client.config().cache_dir.clone(),
    };
    let tty = std::io::stderr().is_terminal() && !a.json;
    let progress = Progress {
        bar: tty.then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
                )
                .unwrap()
                .progress_chars("=> "),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        }),
        quiet: a.json,
    };
    let started = std::time::Instant::now();
    let mut results = farm.run(kernels, &progress);
    if let Some(b) = &progress.bar {
        b.finish_and_clear();
    }
    // GitHub Releases: upload what this run built (and what was staged but not yet uploaded).
    if let Repo::Github(g) = &repo {
        for r in results
            .iter_mut()
            .filter(|r| matches!(r.status, Status::Built | Status::Cached | Status::Unchanged))
        {
            let path = publish_to.probe_path(&version, r.arch.uname_m(), &r.file);
            let up = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    g.upload(&net.client, &version, r.arch.uname_m(), &r.file, &b)
                        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
                });
            if let Err(e) = up {
                r.status = Status::Failed;
                r.error = Some(e);
            }
        }
    }
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let failed = count(Status::Failed);
    let unavailable = count(Status::Unavailable);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "driver_version": version,
                "repo": a.repo,
                "seconds": started.elapsed().as_secs_f64(),
                "built": count(Status::Built), "cached": count(Status::Cached), "unchanged": count(Status::Unchanged),
                "skipped": count(Status::Skipped), "unavailable": unavailable, "failed": failed,
                "kernels": results,
            }))?
        );
    } else {
        for r in &results {
            if let Some(v) = &r.verified {
                eprintln!("{} {}: {v}", r.arch, r.release);
            }
        }
        for r in results.iter().filter(|r| r.status == Status::Unavailable) {
            eprintln!(
                "unavailable: {} {}: {}",
                r.arch,
                r.release,
                r.error.as_deref().unwrap_or("")
            );
        }
        for r in results.iter().filter(|r| r.status == Status::Failed) {
            eprintln!(
                "\n--- {} {} failed:\n{}",
                r.arch,
                r.release,
                r.error.as_deref().unwrap_or("")
            );
        }
        println!(
            "{} built, {} from cache, {} unchanged, {} already published, {} unavailable from this mirror, {} failed in {:.1}s -> {}",
            count(Status::Built), count(Status::Cached), count(Status::Unchanged), count(Status::Skipped), unavailable, failed,
            started.elapsed().as_secs_f64(), publish_to.root.display()
        );
    }
    Ok(if failed > 0 || list_failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn exists(a: ExistsArgs, net_args: &NetArgs) -> Result<ExitCode> {
    let arch = parse_arch(&Some(a.arch.clone()))?.unwrap_or(Arch::X86_64);
    let repo = probeforge::publish::Repo::parse(&a.repo);
    let net = net_args.open()?;
    let file = pipeline::probe_file_name(&a.target_id, &a.kernel_release, &a.kernel_version);
    match repo.exists(Some(&net.client), &a.driver_version, arch.uname_m(), &file) {
        Ok(true) => Ok(ExitCode::SUCCESS),
        Ok(false) => Ok(ExitCode::from(1)),
        Err(e) => Err(UsageError(format!("{:#}", anyhow::Error::from(e))).into()),
    }
}

fn toolchain_cmd(c: ToolchainCmd, net_args: &NetArgs) -> Result<ExitCode> {
    use probeforge::toolchain::{self, Manifest};
    let cache = net_args
        .cache_dir
        .clone()
        .unwrap_or_else(probeforge::http::default_cache_dir);
    match c {
        ToolchainCmd::List => {
            for m in Manifest::embedded() {
                let there = toolchain::root_in_cache(&m, &cache)
                    .join(".complete")
                    .is_file();
                println!(
                    "{:<20} LLVM {:<8} {:<7} {} packages{}",
                    m.name,
                    m.llvm_version,
                    m.host_arch,
                    m.packages.len(),
                    if there { ", in cache" } else { "" }
                );
            }
            println!("{:<20} whatever clang/llc the host has (default)", "host");
        }
        ToolchainCmd::Show { name } => {
            let m = manifest_for(&name)?;
            let root = toolchain::root_in_cache(&m, &cache);
            println!(
                "{} (LLVM {}, {}): {}",
                m.name, m.llvm_version, m.host_arch, m.note
            );
            for p in &m.packages {
                println!(
                    "  {:<24} {:<14} {}  {}",
                    p.name, p.version, p.sha256, p.filename
                );
            }
            println!(
                "cache: {}{}",
                root.display(),
                if root.join(".complete").is_file() {
                    ""
                } else {
                    " (not fetched)"
                }
            );
        }
        ToolchainCmd::Fetch { name } => {
            let m = manifest_for(&name)?;
            let n = net_args.open()?;
            let mirror = n.mirrors.resolve(&n.catalog, &m.mirror)?;
            let root = toolchain::fetch(&m, &n.client, &mirror)?;
            let tc = Toolchain::pinned(&m, &root)?;
            println!(
                "{}: {} / {} at {}",
                m.name,
                tc.clang_version,
                tc.llc_version,
                root.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_cmd(mut a: VerifyArgs, net_args: &NetArgs) -> Result<ExitCode> {
    use probeforge::verify::image;
    if a.kernel_image.is_none() {
        a.kernel_image = Some(image_for_probe_names(&a, net_args)?);
    }
    let kernel_image = a.kernel_image.clone().expect("set above");
    // A meta-package (Debian 7.x `linux-image-R`) names the package with the kernel: fetch it.
    let image = match image::read_package(&kernel_image)? {
        image::Contents::Image(v) => v,
        image::Contents::Meta(m) => {
            let net = net_args.open()?;
            let f = image::follow(&net.lister(), &m)?;
            tracing::info!(
                "kernel of `{}` from {}",
                kernel_image.display(),
                f.chain.join(" -> ")
            );
            f.image
        }
    };
    let mut probes = Vec::new();
    for p in &a.probes {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(p).with_context(|| format!("cannot read `{}`", p.display()))?;
        probes.push(probeforge::verify::VmProbe {
            name,
            bytes,
            tables: None,
        });
    }
    let arch = probeforge::verify::image_arch(&image).ok_or_else(|| {
        UsageError(format!(
            "`{}` is not a kernel image probeforge can boot (an x86 bzImage or an arm64 Image)",
            kernel_image.display()
        ))
    })?;
    let userspace = match &a.userspace {
        Some(req) => {
            let net = net_args.open()?;
            let u = probeforge::verify::userspace::prepare(&net.lister(), req, &probes, arch)?;
            eprintln!(
                "userspace: sysdig {} from {} ({} packages; {} files, {:.1} MB in the VM)",
                u.sysdig_version,
                u.suite.name,
                u.packages.len(),
                u.files,
                u.bytes as f64 / 1e6
            );
            Some(u)
        }
        None => None,
    };
    if !a.no_events && userspace.is_none() {
        if let Err(e) = attach_tables(&a, net_args, arch, &mut probes) {
            if !a.driver_source.is_empty() {
                return Err(e);
            }
            eprintln!("warning: no event capture (give --driver-source, or --no-events): {e:#}");
        }
    }
    let mut cmdline = a.cmdline.clone();
    if let Some(l) = &a.lockdown {
        cmdline = format!("{cmdline} lockdown={l}").trim().to_owned();
    }
    let spinner = (std::io::IsTerminal::is_terminal(&std::io::stderr()) && !a.json).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message(format!(
            "booting {} with {} probe(s) under QEMU ({})",
            kernel_image.display(),
            probes.len(),
            a.accel
        ));
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    let timeout = std::time::Duration::from_secs(a.timeout);
    let scratch = pipeline::default_scratch();
    let v = match &userspace {
        Some(u) => probeforge::verify::boot_userspace(
            &image, &probes, u, &cmdline, timeout, &scratch, &a.accel,
        )?,
        None => probeforge::verify::boot(&image, &probes, &cmdline, timeout, &scratch, &a.accel)?,
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let mut failed = v.reports.len() != probes.len();
    let judged: Vec<(bool, String)> = v.reports.iter().map(probeforge::verify::judge).collect();
    failed |= judged.iter().any(|(ok, _)| !ok);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "booted {} in {:.1}s ({})",
            v.booted_release.as_deref().unwrap_or("?"),
            v.seconds,
            v.accel
        );
        for (r, (_, line)) in v.reports.iter().zip(&judged) {
            println!("{line}");
            for e in r["events"]["proof"].as_array().into_iter().flatten() {
                println!("     {}", event_line(e));
            }
            for l in probeforge::verify::userspace::event_lines(r) {
                println!("     {l}");
            }
        }
        if v.reports.len() != probes.len() {
            println!(
                "FAIL {} probes sent, {} reports back\n{}",
                probes.len(),
                v.reports.len(),
                v.console_tail
            );
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Gives each probe the event tables of the driver source it was built from.
fn attach_tables(
    a: &VerifyArgs,
    net_args: &NetArgs,
    arch: Arch,
    probes: &mut [probeforge::verify::VmProbe],
) -> Result<()> {
    use probeforge::verify::events;
    let tc = a.toolchain.find(net_args)?;
    let scratch = pipeline::default_scratch();
    let tables_of = |p: &std::path::Path| {
        events::tables_from_source(p, arch, &tc, &scratch)
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("driver source `{}`", p.display()))
    };
    let given = !a.driver_source.is_empty();
    let mut sources = a
        .driver_source
        .iter()
        .map(|p| tables_of(p))
        .collect::<Result<Vec<_>>>()?;
    for p in probes.iter_mut() {
        let meta = probeforge::validate::validate(&p.bytes, &Default::default());
        let found = match sources.len() {
            1 if given => Some(0),
            _ => sources
                .iter()
                .position(|(s, _)| events::source_matches(s, &meta)),
        };
        let i = match found {
            Some(i) => i,
            None if given => {
                return Err(UsageError(format!(
                    "`{}` (probe_version {}) was built from none of the --driver-source given",
                    p.name,
                    meta.probe_version.as_deref().unwrap_or("?")
                ))
                .into())
            }
            None => {
                // The source of this probe_version, downloaded (cached), compiled once; a probe
                // whose source cannot be had is still proven to load.
                let fetched = meta
                    .probe_version
                    .ok_or_else(|| anyhow::anyhow!("no probe_version"))
                    .and_then(|v| Ok(net_args.open()?.driver_source(&v, None)?))
                    .and_then(|path| tables_of(&path));
                match fetched {
                    Ok(t) => sources.push(t),
                    Err(e) => {
                        eprintln!(
                            "warning: `{}`: no event capture (give --driver-source, or --no-events): {e:#}",
                            p.name
                        );
                        continue;
                    }
                }
                sources.len() - 1
            }
        };
        p.tables = Some(sources[i].1.clone());
    }
    Ok(())
}

/// One decoded event the way sysdig prints it: `tid > name k=v ...`.
fn event_line(e: &serde_json::Value) -> String {
    let params: Vec<String> = e["params"]
        .as_array()
        .into_iter()
        .flatten()
        .take(6)
        .map(|p| {
            let v = &p[1];
            let mut s = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            if s.len() > 60 {
                s.truncate(57);
                s.push_str("...");
            }
            format!("{}={s}", p[0].as_str().unwrap_or("?"))
        })
        .collect();
    format!(
        "{} {} {} {}",
        e["tid"],
        e["dir"].as_str().unwrap_or("?"),
        e["name"].as_str().unwrap_or("?"),
        params.join(" ")
    )
}

/// The kernel image package of a kernel from the same repository as its headers.
/// Unsigned first (Debian up to 6.x: `linux-image-R-unsigned`; 7.x: `linux-binary-unsigned-R`),
/// then the signed names, following a meta-package (7.x `linux-image-R`) to its kernel.
/// The kernel image for probes given without --kernel-image: the release and target id from
/// Falco's file name (`falco_<target-id>_<release>_<version>.o`; all probes for one kernel),
/// the arch from the release's flavour, the image from --target or each catalog target with
/// that id.
fn image_for_probe_names(a: &VerifyArgs, net_args: &NetArgs) -> Result<PathBuf> {
    let mut kernels = std::collections::BTreeSet::new();
    for p in &a.probes {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        let parts: Vec<&str> = name.trim_end_matches(".o").split('_').collect();
        let [_, target_id, release, _] = parts[..] else {
            return Err(UsageError(format!(
                "`{}` is not named falco_<target-id>_<release>_<version>.o: give --kernel-image",
                p.display()
            ))
            .into());
        };
        kernels.insert((target_id.to_owned(), release.to_owned()));
    }
    if kernels.len() != 1 {
        return Err(UsageError(format!(
            "the probes are for {} kernels; verify boots one: give the probes of one kernel, or --kernel-image",
            kernels.len()
        ))
        .into());
    }
    let (target_id, release) = kernels.into_iter().next().expect("one");
    let arch = if release.contains("arm64") || release.contains("aarch64") {
        Arch::Aarch64
    } else {
        Arch::X86_64
    };
    let net = net_args.open()?;
    let targets: Vec<String> = match &a.target {
        Some(t) => vec![t.clone()],
        None => net
            .catalog
            .targets
            .iter()
            .filter(|t| t.kind == "apt" && target_id.starts_with(t.target_id.as_str()))
            .map(|t| t.name.clone())
            .collect(),
    };
    let mut errors = Vec::new();
    for t in &targets {
        match kernel_image_for(&net, t, arch, &release) {
            Ok(p) => {
                eprintln!("kernel image for {release} from {t}: {}", p.display());
                return Ok(p);
            }
            Err(e) => errors.push(format!("{t}: {e:#}")),
        }
    }
    Err(UsageError(format!(
        "no kernel image for `{release}` ({arch}) in {}: give --kernel-image{}",
        if targets.is_empty() {
            "any catalog target".to_owned()
        } else {
            targets.join(", ")
        },
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join("; "))
        }
    ))
    .into())
}

fn kernel_image_for(net: &Net, target: &str, arch: Arch, release: &str) -> Result<PathBuf> {
    use probeforge::verify::image;
    let mut last = None;
    for name in [
        format!("linux-image-{release}-unsigned"),
        format!("linux-binary-unsigned-{release}"),
        format!("linux-image-{release}"),
        format!("linux-binary-{release}"),
    ] {
        match net.lister().find_package(target, arch, &name) {
            Ok(p) => {
                let path = net
                    .client
                    .fetch_verified(&p.url, &p.sha256, Some(p.size))?
                    .0;
                // Only the signed `linux-image-R` is a meta-package (from 7.x).
                if name != format!("linux-image-{release}") {
                    return Ok(path);
                }
                return match image::read_package(&path)? {
                    image::Contents::Image(_) => Ok(path),
                    image::Contents::Meta(m) => Ok(image::follow(&net.lister(), &m)?.package),
                };
            }
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::Error::from(last.expect("tried"))
        .context(format!("no kernel image for `{release}` in `{target}`")))
}

/// Boots one probe in its kernel; a verdict starting with `ok` or `FAIL`.
fn verify_one(
    image: &std::path::Path,
    name: &str,
    bytes: Vec<u8>,
    tables: Option<probeforge::verify::events::DriverTables>,
) -> Result<String> {
    let vmlinuz = probeforge::verify::kernel_image(image)?;
    let v = probeforge::verify::boot(
        &vmlinuz,
        &[probeforge::verify::VmProbe {
            name: name.to_owned(),
            bytes,
            tables,
        }],
        "",
        std::time::Duration::from_secs(300),
        &pipeline::default_scratch(),
        "auto",
    )?;
    let Some(r) = v.reports.first() else {
        return Ok(format!(
            "FAIL {name}: no report from the VM\n{}",
            v.console_tail
        ));
    };
    let (_, line) = probeforge::verify::judge(r);
    Ok(format!(
        "{line} (in {} under {}, {:.1}s)",
        v.booted_release.as_deref().unwrap_or("?"),
        v.accel,
        v.seconds
    ))
}

/// Lists several targets; an unknown target is a usage error, a target that cannot be listed
/// is reported and the others go on (the bool says whether any failed).
fn list_targets(
    net: &Net,
    targets: &[String],
    arches: &[Arch],
) -> Result<(Vec<probeforge::repo::KernelRecord>, bool)> {
    let mut all = Vec::new();
    let mut failed = false;
    for t in targets {
        match net.lister().list(t, arches) {
            Ok(v) => all.extend(v),
            Err(
                e @ (probeforge::repo::Error::UnknownTarget(_)
                | probeforge::repo::Error::Keys { .. }),
            ) => return Err(UsageError(e.to_string()).into()),
            Err(e) => {
                eprintln!("error: {t}: {:#}", anyhow::Error::from(e));
                failed = true;
            }
        }
    }
    Ok((all, failed))
}
