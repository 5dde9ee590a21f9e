//! The command line's words: every subcommand and flag, with the help that teaches them, and
//! how each turns into the library's plain option structs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use probeforge::command;

#[derive(Parser)]
#[command(
    name = "probeforge",
    version,
    about,
    after_help = "Typical use:\n  probeforge list-kernels debian-bookworm --arch x86_64      what a distro offers\n  probeforge build --target debian --kernel latest -o out/   one probe, fetched and built\n  probeforge build-all debian-bookworm --repo probes/        the nightly job\n  probeforge verify out/*.o --kernel-image linux-image-*.deb prove it loads\n\nExit codes: 0 ok, 1 some work failed, 2 usage or environment error."
)]
pub struct Cli {
    /// More log output (-v, -vv); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors: no progress, notes or warnings on stderr (results still go to stdout).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args)]
pub struct NetArgs {
    /// Download cache (default: $PROBEFORGE_CACHE, $XDG_CACHE_HOME/probeforge, ~/.cache/probeforge).
    #[arg(long, global = true, env = "PROBEFORGE_CACHE")]
    pub cache_dir: Option<PathBuf>,
    /// Use only the cache; fail naming whatever is missing from it.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Use this mirror for a catalog mirror name, e.g. --mirror debian=http://host/debian
    /// (also PROBEFORGE_MIRROR_DEBIAN=...). Wins over the host's APT sources and the catalog.
    #[arg(long = "mirror", global = true, value_name = "NAME=URL", value_parser = parse_kv)]
    pub mirrors: Vec<(String, String)>,
    /// A catalog of targets and mirrors replacing the built-in one (same JSON format).
    #[arg(long, global = true, env = "PROBEFORGE_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Trust these OpenPGP keys (binary keyring or armored keys) for repository metadata
    /// instead of the keys the catalog ships for each target (repeatable).
    #[arg(long = "keyring", global = true, value_name = "FILE")]
    pub keyrings: Vec<PathBuf>,
    /// Use repository metadata that is unsigned or not signed by a trusted key (warning each
    /// time); what is built from it says so in --provenance and index.json.
    #[arg(long, global = true)]
    pub allow_unsigned: bool,
    /// Build kernel modules only with the exact compiler build the kernel's headers name.
    /// Without it, when the distribution no longer serves that build, the newest build of
    /// the same gcc major version from the same distribution is used, said and recorded.
    #[arg(long, global = true)]
    pub exact_compiler: bool,
    /// Only kernels of these flavours, and their variants, from listings (list-kernels,
    /// build-all, site): e.g. --flavour aws,azure (Ubuntu's azure also keeps azure-fde),
    /// --flavour cloud (Debian's cloud-amd64 and cloud-arm64). The flavour is what the release
    /// names after its version: 6.8.0-1040-aws, 6.1.0-50-cloud-amd64.
    #[arg(
        long = "flavour",
        global = true,
        value_delimiter = ',',
        value_name = "FLAVOUR,..."
    )]
    pub flavours: Vec<String>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not NAME=URL"))
}

impl NetArgs {
    pub fn options(&self) -> probeforge::session::Options {
        probeforge::session::Options {
            cache_dir: self.cache_dir.clone(),
            offline: self.offline,
            mirrors: self.mirrors.clone(),
            catalog: self.catalog.clone(),
            keyrings: self.keyrings.clone(),
            allow_unsigned: self.allow_unsigned,
            exact_compiler: self.exact_compiler,
            flavours: self.flavours.clone(),
        }
    }
}

#[derive(Subcommand)]
// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
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
    /// Merge shard repositories into one, as one run over all their kernels would have
    /// written it.
    ///
    /// Checks each input against its own SHA256SUMS and index.json and every file against
    /// its record, refuses two different bytes under one name (naming each, before anything is
    /// written), keeps the failures no input has since published, and rebuilds SHA256SUMS,
    /// index.json and INDEX.md. Never replaces a file; merging again adds only what is new.
    ///
    /// Example: probeforge merge probes/ shard-1/ shard-2/ shard-3/
    Merge(MergeArgs),
    /// Write the repository's static site: index.html and site/ (its own small script,
    /// styles and data; nothing loaded from elsewhere, so it works from file://, any static
    /// server, GitHub Pages or an air-gapped mirror).
    ///
    /// The page shows every kernel the targets ship (listed now, or read --from a plan or a
    /// kernel-crawler list) against every driver version, kind and arch the repository has:
    /// published (link, size, sha256), verified in a VM, failed (the reason, the record with
    /// the whole log) or not built yet; newest kernels first, flagged when they have no driver
    /// yet; a coverage bar per target and driver; and a search by `uname -r` (also from the
    /// URL: index.html?q=6.1.0-50-cloud-amd64) naming the exact file Falco's loaders download.
    /// The kernels used are kept (.probeforge/site/kernels.json): a later `site --repo DIR`
    /// without targets still shows those not built. Build times come only from
    /// `build-all --site` (that run's own).
    ///
    /// Example: probeforge site --repo probes/ debian-bookworm debian-trixie --arch x86_64
    Site(SiteArgs),
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
    /// Write a Bazel package that builds the probes of many kernels hermetically.
    ///
    /// DIR receives a WORKSPACE with one http_file per header package and one for the driver
    /// source (URL and sha256; --driver-source copies the file into DIR/driver/ instead), the
    /// pinned toolchain as a repository rule (probeforge.bzl), a copy of this probeforge in
    /// DIR/tools/, and a BUILD.bazel with one genrule per kernel, named after its release, that
    /// runs `probeforge build --offline` from those files only (tag block-network), plus
    /// //:all. Bazel builds any subset, a remote executor spreads them, a remote cache shares
    /// them; the same inputs write the same bytes.
    ///
    /// Kernels from targets, or from a --from plan file (`build-all --plan --json`), come
    /// with the digests of their signed listing; a --from kernel-crawler list carries none,
    /// so each of its packages is downloaded once to pin its sha256 (warned).
    ///
    /// Example:
    ///   probeforge bazel debian-bookworm --arch x86_64 --only '^6\.1\.0-5[0-9]-amd64$' -o falco-bazel/
    ///   cd falco-bazel && bazel build //:all                 every kernel
    ///   bazel build //:6.1.0-57-amd64                        one
    ///   bazel build //:all --remote_cache=http://cache.internal:8080
    ///
    /// With no network, put every file of `--json`'s `downloads` in a directory, each named by
    /// the last segment of its URL, and build with
    /// `bazel build //:all --distdir=DIR --experimental_repository_disable_download`.
    #[command(verbatim_doc_comment)]
    Bazel(BazelArgs),
    /// Keep a repository current: build each new kernel's driver minutes after its signed
    /// index lists it.
    ///
    /// Each round sends every target's signed index (APT: each suite's InRelease) a
    /// conditional request with the validators of the last one read (If-None-Match,
    /// If-Modified-Since): a 304 costs no body and no listing. A changed target is listed, and
    /// the kernels the repository lacks are built, validated (--verify: proven in their
    /// kernel) and published as build-all does; then the watch sleeps --interval. A failing
    /// kernel is retried with exponential backoff and never holds back the others. Each
    /// published file records in index.json when its kernel was first seen in a signed index
    /// (first_seen) and when it was published (published; verified_at with --verify).
    ///
    /// The state (validators, first sightings, failures with attempts and next retry) is kept
    /// in <repo>/.probeforge/watch.json, so a restart resumes; one watch per repository (a
    /// second one exits 2 naming the holder's pid). SIGTERM or SIGINT: the builds in hand
    /// finish, the state is written, exit 0. --json prints one JSON object per round.
    ///
    /// Example: probeforge watch debian-bookworm debian-bookworm-proposed-updates --repo probes/ --interval 10m
    Watch(WatchArgs),
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// Catalog targets to watch (debian-bookworm, ubuntu-noble-proposed, ...).
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// The repository: a local directory, published into; it also keeps the watch's state.
    #[arg(long)]
    pub repo: PathBuf,
    /// Time between rounds: `90s`, `10m`, `1h` (a bare number is seconds).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Run one round and exit (for a systemd timer or cron): exit 1 if a kernel failed.
    #[arg(long)]
    pub once: bool,
    /// A failing kernel's first retry waits this long; each further failure doubles it.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub retry_after: std::time::Duration,
    /// The longest wait between retries of a failing kernel.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub retry_max: std::time::Duration,
    #[command(flatten)]
    pub farm: FarmArgs,
    /// One JSON object per round on stdout (one line each), instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `90s`, `10m`, `2h`, `1d`, or seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 10m, 2h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("`{s}`: the unit is s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

impl WatchArgs {
    pub fn options(&self) -> command::Result<command::watch::Options> {
        Ok(command::watch::Options {
            build: command::build_all::Options {
                targets: self.targets.clone(),
                repo: self.repo.display().to_string(),
                ..self.farm.options()?
            },
            interval: self.interval,
            once: self.once,
            retry_base: self.retry_after,
            retry_max: self.retry_max,
        })
    }
}

/// What every batch of builds takes, in `build-all` and in `watch`.
#[derive(clap::Args)]
pub struct FarmArgs {
    /// Only this architecture (x86_64, aarch64); default: both.
    #[arg(long)]
    pub arch: Option<String>,
    /// The driver version (default: the --driver-source's own, else the newest driver with a
    /// legacy probe, 9.1.0+driver).
    #[arg(long)]
    pub driver_version: Option<String>,
    /// The driver source (default: downloaded for --driver-version).
    #[arg(long)]
    pub driver_source: Option<PathBuf>,
    /// Which drivers each kernel gets: `ebpf` (the probe, `falco_*.o`; the default), `kmod`
    /// (the kernel module, `falco_*.ko`, built by kbuild with the kernel's own compiler), or
    /// both (`ebpf,kmod`): one download serves both, each is published (or fails) on its own.
    /// With --driverkit-configs: each config's outputs say, --driver keeps those it names.
    #[arg(long, value_name = "ebpf,kmod", value_delimiter = ',')]
    pub driver: Vec<command::build::Driver>,
    /// Kernels compiled at once (default: the number of CPUs); a stop waits for at most this
    /// many builds.
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Prove each probe or module loads (and captures) in its own kernel (QEMU) before
    /// publishing it; the kernel image comes from the target's repository.
    #[arg(long)]
    pub verify: bool,
    /// Directory for temporary trees (default: $TMPDIR, else /dev/shm when it has room,
    /// else /tmp).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Sign every SHA256SUMS with this OpenPGP secret key (binary or armored; a passphrase
    /// from PROBEFORGE_SIGN_PASSPHRASE): a detached, armored `SHA256SUMS.asc` beside it.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// Sign every kernel module with this RSA private key, as the kernel's `sign-file` does
    /// (not --sign-key, which signs SHA256SUMS with OpenPGP). Needs --module-sign-cert.
    #[arg(long, value_name = "KEY", requires = "module_sign_cert")]
    pub module_sign_key: Option<PathBuf>,
    /// The X.509 certificate (PEM or DER) of --module-sign-key.
    #[arg(long, value_name = "CERT", requires = "module_sign_key")]
    pub module_sign_cert: Option<PathBuf>,
    /// Build only shard K of N: the drivers of the kernels whose key (target id, arch,
    /// release, kernel version, driver version, driver) falls in it. N runners of one CI
    /// matrix, each with its own K, split the list with no coordination and no overlap; each
    /// writes a complete repository of its part, and `probeforge merge` joins them.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<probeforge::shard::Shard>,
    #[command(flatten)]
    pub toolchain: ToolchainArgs,
}

impl FarmArgs {
    /// A batch's options from these (targets, repository and the rest at their defaults).
    pub fn options(&self) -> command::Result<command::build_all::Options> {
        Ok(command::build_all::Options {
            arch: command::parse_arch(self.arch.as_deref())?,
            driver_version: self.driver_version.clone(),
            driver_source: self.driver_source.clone(),
            drivers: self.driver.clone(),
            jobs: self.jobs,
            verify: self.verify,
            scratch: self.scratch.clone(),
            sign_key: self.sign_key.clone(),
            sign_passphrase: std::env::var("PROBEFORGE_SIGN_PASSPHRASE").unwrap_or_default(),
            module_sign_key: self.module_sign_key.clone(),
            module_sign_cert: self.module_sign_cert.clone(),
            shard: self.shard,
            ..Default::default()
        })
    }
}

#[derive(clap::Args)]
pub struct BazelArgs {
    /// Catalog targets whose kernels to build (debian-bookworm, ubuntu-jammy, ...).
    pub targets: Vec<String>,
    /// Take (also) the kernels of a list file: a plan (`build-all --plan --json`, digests
    /// kept) or a kernel-crawler JSON list.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Only kernel releases matching this regular expression.
    #[arg(long)]
    pub only: Option<String>,
    /// Only this architecture (x86_64, aarch64); default: both. arm64 probes are cross-built.
    #[arg(long)]
    pub arch: Option<String>,
    /// The driver version (default: the --driver-source's own when known, else 9.1.0+driver,
    /// whose known copy is pinned by digest).
    #[arg(long)]
    pub driver_version: Option<String>,
    /// A driver source file (libs tarball, dkms package), copied into the package.
    #[arg(long)]
    pub driver_source: Option<PathBuf>,
    /// The pinned toolchain every action builds with (default: this machine's,
    /// llvm-14-debian12 on x86_64; see `probeforge toolchain list`).
    #[arg(long)]
    pub toolchain: Option<String>,
    /// The package directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Print JSON (the kernels' targets and files, every download) instead of text.
    #[arg(long)]
    pub json: bool,
}

impl BazelArgs {
    pub fn options(&self) -> command::Result<command::bazel::Options> {
        let toolchain = match &self.toolchain {
            Some(t) => t.clone(),
            None => command::bazel::Options::default_toolchain().ok_or_else(|| {
                command::Error::Usage(
                    "no pinned toolchain runs on this machine: name one with --toolchain".into(),
                )
            })?,
        };
        Ok(command::bazel::Options {
            targets: self.targets.clone(),
            from: self.from.clone(),
            only: self.only.clone(),
            arch: command::parse_arch(self.arch.as_deref())?,
            driver_version: self.driver_version.clone(),
            driver_source: self.driver_source.clone(),
            toolchain,
            output: self.output.clone(),
        })
    }
}

#[derive(clap::Args)]
pub struct DriversArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Catalog targets. A distro's short name covers every supported release of it (`debian`:
    /// bullseye, bookworm, trixie with their updates, security and backports suites; `ubuntu`:
    /// jammy, noble); a release-named target one release (debian-bookworm, ubuntu-jammy,
    /// amazonlinux2023, ...). `--targets-only` lists them with their suites.
    pub targets: Vec<String>,
    /// Only this architecture (x86_64, aarch64); default: both.
    #[arg(long)]
    pub arch: Option<String>,
    /// Print the catalog's targets instead.
    #[arg(long)]
    pub targets_only: bool,
    /// Print JSON records instead of text.
    #[arg(long)]
    pub json: bool,
    /// Output format: text, json, crawler (falcosecurity/kernel-crawler's list), or driverkit
    /// (a grid of driverkit configs written under -o DIR).
    #[arg(long, value_parser = ["text", "json", "crawler", "driverkit"], default_value = "text")]
    pub format: String,
    #[command(flatten)]
    pub driverkit: DriverkitListArgs,
}

/// `list-kernels --format driverkit`: where the grid goes and for which driver versions.
#[derive(clap::Args)]
pub struct DriverkitListArgs {
    /// --format driverkit: the grid's root (`DIR/<driver-version>/<arch>/<target>_<release>_<version>.yaml`).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// --format driverkit: the driver versions to write configs for (repeat or comma-separate;
    /// default: the newest driver with a legacy probe).
    #[arg(long = "driver-version", value_delimiter = ',', value_name = "VERSION")]
    pub driver_versions: Vec<String>,
}

#[derive(clap::Args)]
pub struct BuildAllArgs {
    /// Catalog targets (`debian` = every supported Debian release, debian-bookworm,
    /// amazonlinux2, ...: see `list-kernels --targets-only`); not needed with --from.
    pub targets: Vec<String>,
    /// Take the kernels from a list file instead of listing: a plan (`build-all --plan
    /// --json`: the listing's digests and signature state kept, so every shard of a fan-out
    /// reads one list) or a kernel-crawler JSON list (no digests).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// The repository: a directory (published into), or an HTTP base URL (only looked up;
    /// new probes then go to --output).
    #[arg(long, required_unless_present = "output_root")]
    pub repo: Option<String>,
    /// Where new probes go when --repo is a URL.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Only kernel releases matching this regular expression.
    #[arg(long)]
    pub only: Option<String>,
    #[command(flatten)]
    pub farm: FarmArgs,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
    /// How --shard deals the items: `hash` (of each key alone: runners that list at different
    /// moments still agree) or `cost` (estimated cost, heaviest first: every runner must read
    /// the same list, a plan file given with --from).
    #[arg(long, default_value = "hash", value_name = "hash|cost")]
    pub balance: probeforge::shard::Balance,
    /// Build nothing: print what this run (or shard) would build, each item with its
    /// estimated cost and shard, every shard's load, and every kernel listed. With --json this
    /// is a plan file: `--from plan.json` gives every shard the same list (digests and
    /// signature state kept).
    #[arg(long)]
    pub plan: bool,
    /// After the batch, write the repository's site (see `probeforge site --help`) over the
    /// batch's kernels, with this run's build time per probe.
    #[arg(long)]
    pub site: bool,
    /// Keep watching: build what is new now, then every D (`90s`, `10m`, `1h`) poll the
    /// targets' signed indexes and build only new kernels: the same as `probeforge watch
    /// TARGETS --repo DIR --interval D` (state and lock in the repository; SIGTERM finishes
    /// the builds in hand and exits 0). Needs targets and a local --repo.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub watch: Option<std::time::Duration>,
    #[command(flatten)]
    pub driverkit: DriverkitGridArgs,
}

/// `build-all --driverkit-configs DIR`: a grid of driverkit configs instead of kernels.
#[derive(clap::Args)]
pub struct DriverkitGridArgs {
    /// Build every driverkit config of a tree laid out as the public grid is
    /// (`DIR/<driver-version>/<arch>/<target>_<release>_<version>.yaml`): one batch per driver
    /// version (the folder's, when a config has no driverversion), the drivers each config's
    /// outputs name (--driver keeps some of them; --only and --arch select configs). A pinned
    /// package the signed listing no longer names is replaced by its package of that name,
    /// said. A config or batch that fails is recorded and the others go on. With --plan:
    /// every config resolved, nothing built.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["targets", "from"])]
    pub driverkit_configs: Option<PathBuf>,
    /// With --driverkit-configs: write each config's own output paths under ROOT (instead of
    /// --repo); a config whose outputs are all there is skipped.
    #[arg(long, value_name = "ROOT", requires = "driverkit_configs")]
    pub output_root: Option<PathBuf>,
    /// With --driverkit-configs: refuse header URLs no signed metadata gives a digest for.
    #[arg(long, requires = "driverkit_configs")]
    pub require_verified: bool,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The repository to write (created when missing; one already there is added to).
    pub output: PathBuf,
    /// The shards' repositories (directories written by `build-all --shard`).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Sign every SHA256SUMS of the output with this OpenPGP secret key (passphrase from
    /// PROBEFORGE_SIGN_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct SiteArgs {
    /// The local repository to write the site into.
    #[arg(long)]
    pub repo: PathBuf,
    /// Catalog targets whose listings are the shipped kernels (default: the list kept by the
    /// last site, and what the repository itself records).
    pub targets: Vec<String>,
    /// Shipped kernels from a list file: a plan (`build-all --plan --json`) or a
    /// kernel-crawler JSON list.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Only this architecture's kernels from the listings (x86_64, aarch64); default: both.
    #[arg(long)]
    pub arch: Option<String>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The repository: a directory or an HTTP base URL.
    #[arg(long)]
    pub repo: String,
    /// Rebuild what does not match from its recorded inputs; move bad files aside.
    #[arg(long)]
    pub repair: bool,
    /// With --repair: the driver source to rebuild with, when its digest is the recorded one
    /// (default: the cache's copy, else the known copy of that digest).
    #[arg(long)]
    pub driver_source: Option<PathBuf>,
    /// With --repair: kernels compiled at once.
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// With --repair: directory for temporary trees (default: $TMPDIR, else /dev/shm when it
    /// has room, else /tmp).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Verify every kernel module's signature against this X.509 certificate (PEM or DER):
    /// an unsigned module, or one signed by another key, is a problem.
    #[arg(long, value_name = "CERT")]
    pub sign_cert: Option<PathBuf>,
    #[command(flatten)]
    pub toolchain: ToolchainArgs,
    /// Print JSON (the probes, each problem, the signatures; with --repair what was found and
    /// repaired) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Probe objects, all for the kernel of --kernel-image.
    #[arg(required = true)]
    pub probes: Vec<PathBuf>,
    /// The kernel: a vmlinuz, or the package holding it (Debian linux-image-R[-unsigned],
    /// 7.x linux-binary[-unsigned]-R, RPM kernel-core or kernel). Given a meta-package (7.x
    /// linux-image-R), the package it depends on is fetched from the catalog's APT targets
    /// (through the cache; --offline uses only the cache). Default: found in the catalog for
    /// the kernel the probe's name says (`falco_<target-id>_<release>_<version>.o`), in
    /// --target or every target with that id, as `build --verify` does.
    #[arg(long)]
    pub kernel_image: Option<PathBuf>,
    /// Where to look for the kernel image when --kernel-image is not given (e.g.
    /// debian-bookworm); default: every catalog target with the probe's target id.
    #[arg(long)]
    pub target: Option<String>,
    /// Extra kernel command line (use the target's own: lockdown changes what loads).
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Boot with module signature enforcement (`module.sig_enforce=1`, as Secure Boot's
    /// lockdown enforces it): a module not signed by a key the kernel trusts is refused with
    /// the kernel's own EKEYREJECTED and its "Loading of ... is rejected".
    #[arg(long)]
    pub sig_enforce: bool,
    /// With --sig-enforce: boot as a Secure Boot node does, with this certificate (PEM or DER,
    /// the one modules are signed with) enrolled as a MOK: Debian's OVMF with Secure Boot on
    /// and Microsoft's keys, Debian's signed shim and grub (from --target, default
    /// debian-bookworm; digests from its signed index, through the cache), the certificate in
    /// shim's MokList, and the kernel's signed image (linux-image-R, not -unsigned). The VM
    /// checks Secure Boot is on and the certificate is in the kernel's .machine keyring;
    /// --json adds `secure_boot` (packages, certificate) and, per module, `trust`. x86_64;
    /// needs mkfs.vfat (dosfstools) and mtools.
    #[arg(long, value_name = "CERT", requires = "sig_enforce")]
    pub mok: Option<PathBuf>,
    /// Kernel lockdown mode in the VM, as the target runs (Secure Boot machines often run
    /// `integrity`; `confidentiality` forbids reading kernel memory, which the probe needs).
    #[arg(long, value_parser = ["none", "integrity", "confidentiality"])]
    pub lockdown: Option<String>,
    /// Give up on a VM after this many seconds (on a kernel that prints nothing, after 60
    /// seconds or this, whichever is less; it is booted once more before the error).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// QEMU accelerator: auto (KVM when it can boot a guest here, else TCG), kvm, or tcg.
    #[arg(long, default_value = "auto", value_parser = ["auto", "kvm", "tcg"])]
    pub accel: String,
    /// The driver source the probes were built from (libs tree or tarball, dkms tree or
    /// package): its event tables let the VM capture and decode real events. Repeat it for
    /// probes of several drivers: each probe takes the source with its probe_version, else
    /// its API and schema versions (default: the source of each probe_version, downloaded).
    #[arg(long)]
    pub driver_source: Vec<PathBuf>,
    /// Only prove the programs load; capture no events.
    #[arg(long)]
    pub no_events: bool,
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
    pub userspace: Option<probeforge::verify::userspace::Request>,
    #[command(flatten)]
    pub toolchain: ToolchainArgs,
    /// Print the VM's verdict as JSON (per probe: programs, maps, decoded events) instead of
    /// text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum ToolchainCmd {
    /// The pinned toolchains this probeforge knows.
    List,
    /// A toolchain's packages and digests, and whether it is in the cache.
    Show {
        /// The pinned toolchain (see `probeforge toolchain list`).
        name: String,
    },
    /// Download, verify and unpack a pinned toolchain into the cache.
    Fetch {
        /// The pinned toolchain (see `probeforge toolchain list`).
        #[arg(default_value = "llvm-14-debian12")]
        name: String,
    },
}

#[derive(clap::Args)]
pub struct ExistsArgs {
    /// The repository: a directory, an HTTP base URL (looked up with HEAD) or
    /// `github:OWNER/REPO` (GitHub Releases).
    #[arg(long)]
    pub repo: String,
    /// The driver version the probe was built from (e.g. 8.0.0+driver).
    #[arg(long)]
    pub driver_version: String,
    /// Falco's target id, as in the file name (debian, ubuntu-generic, amazonlinux2, ...).
    #[arg(long)]
    pub target_id: String,
    /// The kernel release in Falco's file name (on Debian the package version and flavour,
    /// `6.1.176-1-amd64`), or another name of the kernel (`uname -r`, its header package),
    /// found in the listing of the catalog's targets of --target-id.
    #[arg(long)]
    pub kernel_release: String,
    /// The number after `#` in `uname -v` (Debian: 1).
    #[arg(long)]
    pub kernel_version: String,
    /// The probe's architecture (x86_64, aarch64).
    #[arg(long, default_value = "x86_64")]
    pub arch: String,
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// The catalog target to fetch from (debian, debian-bookworm, ubuntu-jammy, ...).
    pub target: String,
    /// A kernel release (`uname -r`), or `latest`.
    pub kernel: String,
    /// The kernel's architecture (x86_64, aarch64).
    #[arg(long, default_value = "x86_64")]
    pub arch: String,
    /// Copy the verified packages here (default: just report their cache paths).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print JSON (the kernel and each package's name, version, sha256 and path) instead of
    /// text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ToolchainArgs {
    /// The clang/llc to build with: `auto` (default: the host's, found as below; when the host
    /// has no usable pair, the pinned toolchain for this machine's arch, fetched once into the
    /// cache), `host` (only the host's; fails naming what is missing), the name of a pinned
    /// toolchain (`probeforge toolchain list`; downloaded into the cache on first use and run
    /// with its own loader and libraries), or the path of a toolchain manifest file.
    #[arg(long, default_value = "auto")]
    pub toolchain: String,
    /// clang to use (default: $CLANG, then clang on PATH).
    #[arg(long, env = "CLANG")]
    pub clang: Option<PathBuf>,
    /// llc to use (default: $LLC, then the llc beside clang).
    #[arg(long, env = "LLC")]
    pub llc: Option<PathBuf>,
    /// Refuse any clang/llc but this LLVM version ("14" or "14.0.6").
    #[arg(long)]
    pub require_llvm: Option<String>,
    /// The packages of the pinned --toolchain as files, for a build with no network (a Bazel
    /// action): each is matched to its manifest package by sha256 (a stray file or a missing
    /// package is an error naming it) and unpacked into the cache.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub toolchain_packages: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Kernel header packages (.deb, .rpm, tarballs), unpacked together, or one directory.
    #[arg(long, num_args = 1.., required_unless_present_any = ["target", "from", "kernel_source"], conflicts_with = "target")]
    #[arg(long, num_args = 1.., required_unless_present_any = ["target", "from", "config", "kernelurls"], conflicts_with = "target")]
    pub headers: Vec<PathBuf>,
    /// Build from the kernel's source instead of headers: a source tarball (kernel.org's
    /// `linux-6.1.158.tar.xz`) or a package holding one (Debian's `linux-source-6.1`). With
    /// --kernel-config; --kernel-release sets what `uname -r` says (KERNELRELEASE). The tree is
    /// prepared once (`make olddefconfig modules_prepare` with the host's gcc: needs make, gcc,
    /// flex, bison, bc, libelf and libssl headers) and kept in the cache by digest.
    #[arg(long, requires = "kernel_config", conflicts_with_all = ["headers", "target", "from"])]
    pub kernel_source: Option<PathBuf>,
    /// The kernel's `.config`: a file, an http(s) URL (fetched, its digest recorded), or the
    /// kernel image package that ships it (`boot/config-<release>`, which also names the
    /// release). With --kernel-source, or with --target vanilla (kernel.org's source) and any
    /// kernel built from its source, replacing the config its list carries.
    #[arg(long, conflicts_with = "headers")]
    pub kernel_config: Option<PathBuf>,
    /// Fetch the headers from this catalog target's repositories instead (with --kernel):
    /// `debian` (every supported release), `debian-bookworm`, `ubuntu-jammy`, ...; `vanilla`
    /// (kernel.org's source, with --kernel-config) and `flatcar` are built from their source.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target or --from: the kernel release, or `latest`.
    #[arg(long, default_value = "latest")]
    pub kernel: String,
    /// Take the kernel from a kernel-crawler JSON list (with --kernel).
    #[arg(long, conflicts_with_all = ["target", "headers"])]
    pub from: Option<PathBuf>,
    /// Which kernel, when the headers hold several (with --target: the release, as driverkit's
    /// --kernelrelease).
    #[arg(long, visible_alias = "kernelrelease")]
    pub kernel_release: Option<String>,
    /// The driver: a falcosecurity/libs tree or tarball, or a dkms tree or package.
    /// Default: download the source of --driver-version.
    #[arg(long)]
    pub driver_source: Option<PathBuf>,
    /// The driver version (e.g. 8.0.0+driver). Default: what the --driver-source says (a known
    /// copy's digest, a libs archive's top folder, a dkms tree's version mapped to its driver
    /// release), else the newest driver with a legacy probe (9.1.0+driver).
    #[arg(long, visible_alias = "driverversion")]
    pub driver_version: Option<String>,
    /// Base URL of falcosecurity/libs archives (GitHub's by default).
    #[arg(long, env = "PROBEFORGE_DRIVER_ARCHIVE")]
    pub driver_archive: Option<String>,
    /// Falco's target id (debian, ubuntu-generic, amazonlinux2, ...); told from the headers
    /// when they say.
    #[arg(long)]
    pub target_id: Option<String>,
    /// The number after `#` in `uname -v` (default: from the headers, else 1).
    #[arg(long, visible_alias = "kernelversion")]
    pub kernel_version: Option<String>,
    /// Refuse headers of another architecture (x86_64, aarch64; driverkit's amd64, arm64).
    #[arg(long, visible_alias = "architecture")]
    pub arch: Option<String>,
    /// Output directory; receives only the probe.
    #[arg(short, long, default_value = ".")]
    pub output: PathBuf,
    /// Directory for temporary trees (default: $TMPDIR, else /dev/shm when it has room,
    /// else /tmp).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Use the patches in this directory (with its index.json) instead of the built-in ones.
    #[arg(long)]
    pub patches: Option<PathBuf>,
    /// Write a provenance statement (inputs with digests, toolchain, flags, patches, output
    /// digest) to this file.
    #[arg(long)]
    pub provenance: Option<PathBuf>,
    /// Then prove the probe loads: boot its kernel under QEMU and run every program through
    /// the verifier. The kernel image comes from --kernel-image, or from the target's
    /// repository (Debian: linux-image-<release>-unsigned).
    #[arg(long)]
    pub verify: bool,
    /// The kernel image for --verify (a vmlinuz or a linux-image package).
    #[arg(long, requires = "verify")]
    pub kernel_image: Option<PathBuf>,
    /// Which driver: `ebpf` (the legacy eBPF probe, `falco_*.o`, clang + llc) or `kmod` (the
    /// kernel module, `falco_*.ko`, built by kbuild with the compiler that built the kernel:
    /// Debian's own gcc, pinned by digest and fetched into the cache once, or the host's when
    /// its `--version` is exactly the kernel's; any other compiler is refused, naming both).
    /// The module is validated against the kernel's Module.symvers (vermagic, symbols, CRCs).
    /// `ebpf,kmod` builds both for the kernel (one download serves both).
    #[arg(
        long,
        default_value = "ebpf",
        value_name = "ebpf,kmod",
        value_delimiter = ','
    )]
    pub driver: Vec<command::build::Driver>,
    /// Replace a different file already in the output directory under the same name
    /// (without it, the build refuses, naming both digests; the same bytes are left as they
    /// are).
    #[arg(long)]
    pub force: bool,
    /// kbuild jobs for --driver kmod (default: the number of CPUs).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// --driver kmod: the module's and its devices' name (default `falco`, what Falco opens;
    /// Debian's sysdig opens `scap`). driverkit's `moduledrivername`/`moduledevicename`.
    #[arg(long, value_name = "NAME", visible_aliases = ["moduledrivername", "moduledevicename"])]
    pub module_name: Option<String>,
    /// Kernel modules: sign each with this private key, as the kernel's `scripts/sign-file`
    /// does (PKCS#7 appended, the kernel's CONFIG_MODULE_SIG_HASH) so a Secure Boot node that
    /// enrolled --sign-cert (its MOK) loads it. An unencrypted RSA key, PEM or DER, PKCS#8 or
    /// PKCS#1; it is never logged nor recorded (the provenance names the certificate).
    #[arg(long, value_name = "KEY", requires = "sign_cert")]
    pub sign_key: Option<PathBuf>,
    /// The X.509 certificate (PEM or DER) of --sign-key.
    #[arg(long, value_name = "CERT", requires = "sign_key")]
    pub sign_cert: Option<PathBuf>,
    #[command(flatten)]
    pub driverkit: DriverkitBuildArgs,
    #[command(flatten)]
    pub toolchain: ToolchainArgs,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The probe object.
    pub probe: PathBuf,
    /// The kernel the probe must be for: `uname -r`, its header package (or that package's
    /// file name), or, with --target, any name the target's listing knows (Falco's file
    /// release, `6.1.176-1-amd64`).
    #[arg(long)]
    pub kernel_release: Option<String>,
    /// The catalog target whose listing resolves --kernel-release (lists it: network).
    #[arg(long, requires = "kernel_release")]
    pub target: Option<String>,
    /// The driver version the probe must carry.
    #[arg(long)]
    pub driver_version: Option<String>,
    /// The architecture the probe must be for.
    #[arg(long)]
    pub arch: Option<String>,
    /// A kernel module: verify its signature against this X.509 certificate (PEM or DER), as
    /// the kernel does (signer, then RSA over the module's bytes); unsigned fails.
    #[arg(long, value_name = "CERT")]
    pub sign_cert: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Header packages (.deb, .rpm, tarballs) unpacked together, or one unpacked directory.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Which kernel, when the inputs hold several.
    #[arg(long)]
    pub kernel_release: Option<String>,
    /// Also print these kernel config values (e.g. --config BPF_SYSCALL --config HZ).
    #[arg(long = "config", value_name = "CONFIG_NAME")]
    pub configs: Vec<String>,
    /// Unpack every file, not only what a probe build reads (slower; for a full tree).
    #[arg(long)]
    pub all_files: bool,
    /// Also say which compiler the kernel module needs and where it would come from: a
    /// pinned manifest, this host's program of the same name, or the kernel's own
    /// distribution's signed indexes (read over the network, as `build --driver kmod` does;
    /// `--exact-compiler` refuses a nearest build). Nothing is downloaded but the indexes.
    #[arg(long)]
    pub compiler: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ToolchainArgs {
    pub fn options(&self) -> command::toolchain::Options {
        command::toolchain::Options {
            choice: self.toolchain.clone(),
            clang: self.clang.clone(),
            llc: self.llc.clone(),
            require_llvm: self.require_llvm.clone(),
            packages: self.toolchain_packages.clone(),
        }
    }
}

impl BuildArgs {
    pub fn options(&self) -> command::Result<command::build::Options> {
        // A driverkit build may make a module beside the probe: the module is what is signed.
        if self.sign_key.is_some()
            && !self.driver.contains(&command::build::Driver::Kmod)
            && self.driverkit.config.is_none()
            && self.driverkit.output_module.is_none()
        {
            return Err(command::Error::Usage(
                "--sign-key signs kernel modules: pass --driver kmod".into(),
            ));
        }
        Ok(command::build::Options {
            headers: self.headers.clone(),
            target: self.target.clone(),
            from: self.from.clone(),
            kernel: self.kernel(),
            kernel_release: self.kernel_release.clone(),
            driver_source: self.driver_source.clone(),
            driver_version: self.driver_version.clone(),
            driver_archive: self.driver_archive.clone(),
            target_id: self.target_id.clone(),
            kernel_version: self.kernel_version.clone(),
            arch: command::parse_arch(self.arch.as_deref())?,
            output: self.output.clone(),
            scratch: self.scratch.clone(),
            patches: self.patches.clone(),
            provenance: self.provenance.clone(),
            verify: self.verify,
            kernel_image: self.kernel_image.clone(),
            driver: self.driver.first().copied().unwrap_or_default(),
            force: self.force,
            jobs: self.jobs,
            module_name: self.module_name.clone(),
            module_sign_key: self.sign_key.clone(),
            module_sign_cert: self.sign_cert.clone(),
            kernel_source: self.kernel_source.clone(),
            kernel_config: self.kernel_config.clone(),
            file_release: None,
            driverkit: self.driverkit.request(),
        })
    }
}

impl BuildAllArgs {
    /// `build-all --watch D` as `watch`'s options; what a watch cannot do is a usage error.
    pub fn watch_options(
        &self,
        interval: std::time::Duration,
    ) -> command::Result<command::watch::Options> {
        let refused = [
            (self.from.is_some(), "--from"),
            (self.only.is_some(), "--only"),
            (self.plan, "--plan"),
            (self.site, "--site"),
            (self.output.is_some(), "--output"),
            (
                self.driverkit.driverkit_configs.is_some(),
                "--driverkit-configs",
            ),
        ];
        if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
            return Err(command::Error::Usage(format!(
                "--watch polls the targets' indexes: it does not take {flag}"
            )));
        }
        if self.targets.is_empty() {
            return Err(command::Error::Usage("--watch needs targets".into()));
        }
        let repo =
            match self.repo.as_deref() {
                Some(r) if !r.contains("://") => r.to_owned(),
                _ => return Err(command::Error::Usage(
                    "--watch publishes into a local --repo directory (it keeps its state there)"
                        .into(),
                )),
            };
        // What each round builds is exactly this build-all's batch, into its repository.
        let mut build = self.options()?;
        build.repo = repo;
        Ok(command::watch::Options {
            build,
            interval,
            once: false,
            retry_base: std::time::Duration::from_secs(600),
            retry_max: std::time::Duration::from_secs(86400),
        })
    }

    pub fn options(&self) -> command::Result<command::build_all::Options> {
        Ok(command::build_all::Options {
            targets: self.targets.clone(),
            from: self.from.clone(),
            repo: self.repo.clone().unwrap_or_default(),
            output: self.output.clone(),
            only: self.only.clone(),
            balance: self.balance,
            site: self.site,
            kernels: Vec::new(),
            driverkit_configs: self.driverkit.driverkit_configs.clone(),
            output_root: self.driverkit.output_root.clone(),
            require_verified: self.driverkit.require_verified,
            ..self.farm.options()?
        })
    }
}

impl SiteArgs {
    pub fn options(&self) -> command::Result<command::site::Options> {
        Ok(command::site::Options {
            repo: self.repo.clone(),
            targets: self.targets.clone(),
            from: self.from.clone(),
            arch: command::parse_arch(self.arch.as_deref())?,
        })
    }
}

impl CheckArgs {
    pub fn options(&self) -> command::check::Options {
        command::check::Options {
            repo: self.repo.clone(),
            repair: self.repair,
            driver_source: self.driver_source.clone(),
            jobs: self.jobs,
            scratch: self.scratch.clone(),
            toolchain: self.toolchain.options(),
            sign_cert: self.sign_cert.clone(),
        }
    }
}

impl VerifyArgs {
    pub fn options(&self) -> command::verify::Options {
        command::verify::Options {
            probes: self.probes.clone(),
            kernel_image: self.kernel_image.clone(),
            target: self.target.clone(),
            cmdline: match self.sig_enforce {
                true => format!("{} module.sig_enforce=1", self.cmdline)
                    .trim()
                    .to_owned(),
                false => self.cmdline.clone(),
            },
            lockdown: self.lockdown.clone(),
            timeout: std::time::Duration::from_secs(self.timeout),
            accel: self.accel.clone(),
            driver_sources: self.driver_source.clone(),
            no_events: self.no_events,
            userspace: self.userspace.clone(),
            toolchain: self.toolchain.options(),
            mok: self.mok.clone(),
        }
    }
}

/// driverkit's config and flags on `probeforge build` (see docs/driverkit.md).
#[derive(clap::Args)]
pub struct DriverkitBuildArgs {
    /// A driverkit config (YAML): kernelrelease, kernelversion, target (then a Falco target id,
    /// as driverkit's --target), architecture, driverversion, output.probe/module,
    /// kernelurls (checked against the signed listing where the catalog knows them),
    /// kernelconfigdata, moduledrivername/moduledevicename. Flags win over its keys.
    #[arg(short = 'c', long = "config", value_name = "FILE.yaml")]
    pub config: Option<PathBuf>,
    /// driverkit's header URLs (then --target is a Falco target id, as driverkit's).
    #[arg(long, value_delimiter = ',', num_args = 1.., value_name = "URL")]
    pub kernelurls: Vec<String>,
    /// Write the probe exactly here (driverkit's --output-probe).
    #[arg(long, value_name = "FILE")]
    pub output_probe: Option<PathBuf>,
    /// Write the kernel module exactly here (driverkit's --output-module).
    #[arg(long, value_name = "FILE")]
    pub output_module: Option<PathBuf>,
    /// Refuse header URLs that no signed repository metadata gives a digest for.
    #[arg(long)]
    pub require_verified: bool,
}

impl DriverkitBuildArgs {
    fn request(&self) -> command::driverkit::Request {
        command::driverkit::Request {
            config: self.config.clone(),
            kernelurls: self.kernelurls.clone(),
            output_probe: self.output_probe.clone(),
            output_module: self.output_module.clone(),
            require_verified: self.require_verified,
            unauthenticated: Vec::new(),
        }
    }
}

impl BuildArgs {
    /// `--kernel`, or with --target and driverkit's --kernelrelease (no config), that release.
    fn kernel(&self) -> String {
        match (&self.kernel_release, self.kernel.as_str()) {
            (Some(r), "latest") if self.target.is_some() && self.driverkit.config.is_none() => {
                r.clone()
            }
            _ => self.kernel.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every subcommand says what it is for in `--help`.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let builtin = matches!(a.get_id().as_str(), "help" | "version");
            if !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{path} {}", a.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none()
                && sub.get_long_about().is_none()
                && sub.get_name() != "help"
            {
                out.push(format!("{path} {} (the subcommand)", sub.get_name()));
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_of_every_subcommand_has_help() {
        let mut missing = Vec::new();
        undocumented(&super::Cli::command(), "probeforge", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }
}
