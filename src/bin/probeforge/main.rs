//! The `probeforge` command line: it parses, calls the library's commands
//! ([`probeforge::command`]), renders what they return, and maps errors to exit codes:
//! 0 ok, 1 some work failed, 2 usage or environment error.

mod args;
mod render;

use std::process::ExitCode;

use clap::Parser;
use probeforge::command::{self, Error};
use probeforge::extract::{self, Selection};
use probeforge::kernel::{Arch, KernelTree};

use args::{Cli, Command, NetArgs, ToolchainCmd};
use render::Progress;

type Result<T, E = Error> = std::result::Result<T, E>;

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
    render::set_quiet(cli.quiet);
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let usage = e.is_usage();
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::from(if usage { 2 } else { 1 })
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

/// Runs a command: `Ok(true)` when all its work succeeded (exit 0), `Ok(false)` when some
/// failed (exit 1).
fn run(cli: Cli) -> Result<bool> {
    let net = cli.net.options();
    match cli.command {
        Command::Inspect(a) => {
            command::need_files("input", &a.inputs)?;
            let selection = match a.all_files {
                true => Selection::Everything,
                false => Selection::ProbeBuild,
            };
            let staged = extract::Staged::new(&a.inputs, selection, None)?;
            let k = KernelTree::find(staged.root(), a.kernel_release.as_deref())?;
            let compiler = match a.compiler {
                true => {
                    let s = probeforge::session::Session::open(&net)?;
                    Some(probeforge::kmod::resolve::FindCompiler::find(
                        &s.compilers(),
                        &k,
                        None,
                    ))
                }
                false => None,
            };
            render::inspect(&k, &a.configs, compiler.as_ref(), a.json);
            Ok(true)
        }
        // driverkit's config or flags, or exact output paths: one build per output named.
        Command::Build(a)
            if a.driverkit.config.is_some()
                || !a.driverkit.kernelurls.is_empty()
                || a.driverkit.output_probe.is_some()
                || a.driverkit.output_module.is_some() =>
        {
            let rep = Progress::new(a.json);
            let tc = command::toolchain::resolve(&a.toolchain.options(), &net, &rep)?;
            let built = command::driverkit::build(&a.options()?, &net, &tc, &rep);
            rep.finish();
            let mut ok = true;
            for b in built? {
                if a.json && b.ok() {
                    render::build_json(&b);
                } else {
                    render::build(&b);
                }
                ok &= b.ok();
            }
            Ok(ok)
        }
        // One driver, or several for one kernel (`--driver ebpf,kmod`: the second build takes
        // the kernel's packages from the cache).
        Command::Build(a) => {
            let rep = Progress::new(a.json);
            let tc = command::toolchain::resolve(&a.toolchain.options(), &net, &rep)?;
            let mut drivers = a.driver.clone();
            drivers.sort();
            drivers.dedup();
            let several = drivers.len() > 1;
            let mut ok = true;
            let mut reports = Vec::new();
            for d in drivers {
                let o = command::build::Options {
                    driver: d,
                    ..a.options()?
                };
                let built = command::build::run(&o, &net, &tc, &rep);
                rep.finish();
                let built = built?;
                // A probe that failed its proof is reported, not printed as built.
                match (a.json && built.ok(), several) {
                    (true, true) => reports.push(render::build_value(&built)),
                    (true, false) => render::build_json(&built),
                    (false, _) => render::build(&built),
                }
                ok &= built.ok();
            }
            // Several drivers under --json: one array, one report per driver.
            if several && a.json {
                render::json(&reports);
            }
            Ok(ok)
        }
        Command::Validate(a) => {
            command::need_files("probe", [&a.probe])?;
            let bytes = std::fs::read(&a.probe).map_err(|source| Error::Read {
                path: a.probe.clone(),
                source,
            })?;
            let arch = command::parse_arch(a.arch.as_deref())?;
            // Any name of the kernel: the `uname -r` it means (said when it was another name).
            let kernel_release = match &a.kernel_release {
                Some(name) => Some(command::query::kernel_release_of(
                    &net,
                    name,
                    a.target.as_deref(),
                    arch,
                    &Progress::new(a.json),
                )?),
                None => None,
            };
            let expect = probeforge::validate::Expect {
                kernel_release,
                driver_version: a.driver_version,
                arch,
                ..Default::default()
            };
            // A kernel module by its name, or by its `.modinfo`.
            let is_module = a.probe.extension().is_some_and(|e| e == "ko")
                || probeforge::kmod::validate::modinfo(&bytes).is_ok();
            let cert = match &a.sign_cert {
                Some(p) => Some(probeforge::kmod::sign::Cert::from_file(p)?),
                None => None,
            };
            let report = match is_module {
                true => {
                    let mut r = probeforge::kmod::validate::headerless(&bytes, &expect);
                    probeforge::kmod::validate::signature_checks(&mut r, &bytes, cert.as_ref());
                    r
                }
                false if cert.is_some() => {
                    return Err(command::Error::Usage(
                        "--sign-cert verifies kernel modules; this is not one".into(),
                    ))
                }
                false => probeforge::validate::validate(&bytes, &expect),
            };
            match a.json {
                true => render::json(&report),
                false => render::validate(&report),
            }
            Ok(report.ok())
        }
        Command::ListKernels(a) => list_kernels(a, &net),
        Command::Fetch(a) => {
            let arch = command::parse_arch(Some(&a.arch))?.unwrap_or(Arch::X86_64);
            let rep = Progress::new(a.json);
            let got =
                command::query::fetch(&net, &a.target, arch, &a.kernel, a.output.as_deref(), &rep)?;
            match a.json {
                true => render::json(&got),
                false => render::fetched(&got),
            }
            Ok(true)
        }
        Command::Drivers(a) => {
            let table = probeforge::releases::Table::embedded();
            match a.json {
                true => render::json(&table),
                false => render::drivers(&table),
            }
            Ok(true)
        }
        // A driverkit grid's plan: every config resolved, nothing built.
        Command::BuildAll(a) if a.watch.is_some() => {
            let o = a.watch_options(a.watch.expect("given"))?;
            watch(o, &a.farm.toolchain, a.json, &net)
        }
        Command::BuildAll(a) if a.plan && a.driverkit.driverkit_configs.is_some() => {
            let rep = Progress::new(a.json);
            let plan = command::driverkit::grid_plan(&a.options()?, &net, &rep);
            rep.finish();
            let plan = plan?;
            match a.json {
                true => render::json(&plan),
                false => println!("{plan}"),
            }
            Ok(plan.ok())
        }
        Command::BuildAll(a) if a.plan => {
            let rep = Progress::new(a.json);
            let plan = command::build_all::plan(&a.options()?, &net, &rep);
            rep.finish();
            let plan = plan?;
            match a.json {
                true => render::json(&plan),
                false => render::plan(&plan),
            }
            Ok(!plan.list_failed)
        }
        Command::Merge(a) => {
            let o = command::merge::Options {
                output: a.output,
                inputs: a.inputs,
                sign_key: a.sign_key,
                sign_passphrase: std::env::var("PROBEFORGE_SIGN_PASSPHRASE").unwrap_or_default(),
            };
            let m = command::merge::run(&o)?;
            match a.json {
                true => render::json(&m),
                false => println!(
                    "{} new, {} already there, {} failures kept; {} files in {}",
                    m.new,
                    m.unchanged,
                    m.failures,
                    m.published,
                    m.output.display()
                ),
            }
            Ok(true)
        }
        Command::BuildAll(a) => {
            let o = a.options()?;
            let rep = Progress::batch(a.json);
            let tc = command::toolchain::resolve(&a.farm.toolchain.options(), &net, &rep)?;
            let done = match o.driverkit_configs {
                Some(_) => command::driverkit::grid(&o, &net, &tc, &rep),
                None => command::build_all::run(&o, &net, &tc, &rep),
            };
            rep.finish();
            let done = done?;
            match a.json {
                true => render::json(&done),
                false => render::build_all(&done),
            }
            if let (false, Some(w)) = (a.json, &done.site) {
                render::site(w);
            }
            Ok(done.ok())
        }
        Command::Watch(a) => watch(a.options()?, &a.farm.toolchain, a.json, &net),
        Command::Site(a) => {
            let rep = Progress::new(a.json);
            let w = command::site::run(&a.options()?, &net, &rep);
            rep.finish();
            let w = w?;
            match a.json {
                true => render::json(&w),
                false => render::site(&w),
            }
            Ok(true)
        }
        Command::Exists(a) => {
            let arch = command::parse_arch(Some(&a.arch))?.unwrap_or(Arch::X86_64);
            let probe = command::query::Probe {
                target_id: &a.target_id,
                kernel_release: &a.kernel_release,
                kernel_version: &a.kernel_version,
            };
            let rep = Progress::new(false);
            command::query::exists(&net, &a.repo, &a.driver_version, arch, &probe, &rep)
        }
        Command::Toolchain(c) => toolchain(c, &cli.net),
        Command::Verify(a) => {
            let rep = Progress::new(a.json);
            let v = command::verify::run(&a.options(), &net, &rep);
            rep.finish();
            let v = v?;
            match a.json {
                true => render::json(&v.verdict),
                false => render::verified(&v),
            }
            Ok(v.ok())
        }
        Command::Bazel(a) => {
            let rep = Progress::new(a.json);
            let w = command::bazel::run(&a.options()?, &net, &rep);
            rep.finish();
            let w = w?;
            match a.json {
                true => render::json(&w),
                false => render::bazel(&w),
            }
            Ok(w.complete)
        }
        Command::Check(a) => {
            let rep = Progress::new(a.json);
            let c = command::check::run(&a.options(), &net, &rep)?;
            match a.json {
                true => render::check_json(&c, a.repair),
                false => render::check(&c, a.repair),
            }
            Ok(c.report.problems.is_empty())
        }
    }
}

/// `watch`, and `build-all --watch`: rounds until SIGTERM/SIGINT (or one with `--once`).
fn watch(
    o: command::watch::Options,
    toolchain: &args::ToolchainArgs,
    json: bool,
    net: &probeforge::session::Options,
) -> Result<bool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| command::Error::Usage(format!("cannot handle signal {sig}: {e}")))?;
    }
    let rep = render::Watching::new(json);
    let tc = command::toolchain::resolve(&toolchain.options(), net, &rep.progress)?;
    let done = command::watch::run(&o, net, &tc, &rep, &stop)?;
    // A stopped watch is a clean exit; --once says whether its round's work failed.
    Ok(!o.once || done.last_failed == 0)
}

fn list_kernels(a: args::ListArgs, net: &probeforge::session::Options) -> Result<bool> {
    let s = probeforge::session::Session::open(net)?;
    if a.targets_only || a.targets.is_empty() {
        render::targets(&s.catalog);
        if a.targets.is_empty() && !a.targets_only {
            return Err(Error::Usage(
                "give one or more targets to list their kernels".into(),
            ));
        }
        return Ok(true);
    }
    let arches = command::arches(a.arch.as_deref())?;
    let rep = Progress::new(a.json);
    let (all, failed) = command::query::list_targets(&s, &a.targets, &arches, &rep)?;
    if a.format == "driverkit" {
        let Some(dir) = &a.driverkit.output else {
            return Err(Error::Usage("--format driverkit needs -o DIR".into()));
        };
        let versions = match a.driverkit.driver_versions.is_empty() {
            true => vec![probeforge::session::default_driver_version()],
            false => a.driverkit.driver_versions.clone(),
        };
        let written = command::driverkit::write_grid(&all, &versions, dir)?;
        render::driverkit_grid(&written, dir, a.json);
    } else if a.format == "crawler" {
        render::json(&probeforge::repo::crawler::write(&all));
    } else if a.json || a.format == "json" {
        render::json(&all);
    } else {
        render::kernels(&all);
    }
    Ok(!failed)
}

fn toolchain(c: ToolchainCmd, net: &NetArgs) -> Result<bool> {
    let cache = net
        .cache_dir
        .clone()
        .unwrap_or_else(probeforge::http::default_cache_dir);
    match c {
        ToolchainCmd::List => render::toolchains(&cache),
        ToolchainCmd::Show { name } => {
            render::toolchain(&command::toolchain::manifest(&name)?, &cache)
        }
        ToolchainCmd::Fetch { name } => {
            let m = command::toolchain::manifest(&name)?;
            let s = probeforge::session::Session::open(&net.options())?;
            let rep = Progress::new(false);
            let tc = command::toolchain::pinned(&m, &s, &rep)?;
            let root = probeforge::toolchain::root_in_cache(&m, &s.client.config().cache_dir);
            println!(
                "{}: {} / {} at {}",
                m.name,
                tc.clang_version,
                tc.llc_version,
                root.display()
            );
        }
    }
    Ok(true)
}
