//! How the command line shows what the library did: progress (bars and spinners on a terminal,
//! plain lines in a log, nothing under `--json`) and each command's text output.

use std::io::IsTerminal;
use std::sync::Mutex;

use probeforge::command::{bazel, build, build_all, check, query, verify};
use probeforge::farm::{KernelResult, Status};
use probeforge::kernel::{Arch, KernelTree};
use probeforge::kmod::gcc::CompilerSource;
use probeforge::kmod::Error as KmodError;
use probeforge::report::{Phase, Reporter};

/// `-q`: nothing on stderr but errors and failures (results on stdout stay).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// A line for the person watching (stderr), unless `-q`.
macro_rules! say {
    ($($t:tt)*) => {
        if !quiet() {
            eprintln!($($t)*);
        }
    };
}

use probeforge::report::count;

/// Progress on stderr: a bar for a batch and spinners for long phases on a terminal, plain
/// lines otherwise; `quiet` (`--json`, `-q`) keeps only warnings (`-q`: not even those).
pub struct Progress {
    /// The batch's bar, made once the batch knows its size (never an empty `0/0` bar).
    bar: std::sync::OnceLock<indicatif::ProgressBar>,
    batch: bool,
    spinner: Mutex<Option<indicatif::ProgressBar>>,
    tty: bool,
    quiet: bool,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        Progress {
            bar: std::sync::OnceLock::new(),
            batch: false,
            spinner: Mutex::new(None),
            tty: std::io::stderr().is_terminal() && !json && !quiet(),
            quiet: json || quiet(),
        }
    }

    /// With a progress bar for a batch (on a terminal), shown once its size is known.
    pub fn batch(json: bool) -> Progress {
        Progress {
            batch: true,
            ..Progress::new(json)
        }
    }

    fn line(&self, text: &str) {
        match self.bar.get() {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = self.bar.get() {
            b.finish_and_clear();
        }
        self.done("");
    }
}

impl Reporter for Progress {
    fn planned(&self, to_build: usize, skipped: usize) {
        if self.batch && self.tty && to_build > 0 {
            let b = self.bar.get_or_init(|| {
                let b = indicatif::ProgressBar::new(to_build as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                b.enable_steady_tick(std::time::Duration::from_millis(200));
                b
            });
            b.set_length(to_build as u64);
        }
        if !self.quiet {
            self.line(&format!(
                "{} to build, {skipped} already published",
                count(to_build, "kernel")
            ));
        }
    }
    fn phase(&self, subject: &str, phase: Phase) {
        if let Some(b) = self.bar.get() {
            b.set_message(format!("{phase} {subject}"));
        } else if self.tty {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_message(format!("{phase} {subject}"));
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            if let Some(old) = self.spinner.lock().unwrap().replace(s) {
                old.finish_and_clear();
            }
        }
    }
    fn done(&self, _subject: &str) {
        if let Some(s) = self.spinner.lock().unwrap().take() {
            s.finish_and_clear();
        }
    }
    fn note(&self, text: &str) {
        if !self.quiet {
            self.line(text);
        }
    }
    fn warn(&self, text: &str) {
        if !quiet() {
            self.line(&format!("warning: {text}"));
        }
    }
}

impl probeforge::farm::Reporter for Progress {
    fn finished(&self, r: &KernelResult) {
        if r.status == Status::Skipped {
            return;
        }
        let first = |e: &String| e.lines().next().unwrap_or("").to_owned();
        let line = match &r.error {
            Some(e) if r.status == Status::Unavailable => {
                format!("UNAVAIL {} {}: {}", r.arch, r.release, first(e))
            }
            Some(e) => format!("FAILED  {} {}: {}", r.arch, r.release, first(e)),
            None => format!(
                "{:<8}{} {} ({:.1}s)",
                format!("{:?}", r.status).to_lowercase(),
                r.arch,
                r.release,
                r.seconds
            ),
        };
        if let Some(b) = self.bar.get() {
            b.println(line);
            b.inc(1);
        } else if !self.quiet {
            eprintln!("{line}");
        }
    }
}

/// `watch`'s progress: the farm's lines, and one line per round (JSON with `--json`).
pub struct Watching {
    pub progress: Progress,
    json: bool,
}

impl Watching {
    pub fn new(json: bool) -> Watching {
        Watching {
            progress: Progress::new(json),
            json,
        }
    }
}

impl Reporter for Watching {
    fn planned(&self, to_build: usize, skipped: usize) {
        self.progress.planned(to_build, skipped)
    }
    fn phase(&self, subject: &str, phase: Phase) {
        self.progress.phase(subject, phase)
    }
    fn done(&self, subject: &str) {
        self.progress.done(subject)
    }
    fn note(&self, text: &str) {
        self.progress.note(text)
    }
    fn warn(&self, text: &str) {
        self.progress.warn(text)
    }
}

impl probeforge::farm::Reporter for Watching {
    fn finished(&self, r: &KernelResult) {
        self.progress.finished(r)
    }
}

impl probeforge::command::watch::Reporter for Watching {
    fn round(&self, r: &probeforge::command::watch::Round) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let line = match self.json {
            true => serde_json::to_string(r).expect("JSON values serialize"),
            false => {
                let not_modified = r
                    .polls
                    .iter()
                    .filter(|p| p.status == "not-modified")
                    .count();
                let bytes: u64 = r.polls.iter().map(|p| p.bytes).sum();
                let mut l = format!(
                    "round {} at {}: {} of {} unchanged ({bytes} bytes read), {} listed, {} published, {} failed, {} waiting to retry ({:.1}s)",
                    r.round,
                    r.started,
                    not_modified,
                    count(r.polls.len(), "index"),
                    count(r.kernels, "kernel"),
                    r.published.len(),
                    r.failed + r.unavailable,
                    r.deferred,
                    r.seconds
                );
                if r.interrupted {
                    l.push_str("; stopped: the rest waits for the next run");
                }
                for e in &r.errors {
                    l.push_str(&format!("\n  error: {e}"));
                }
                l
            }
        };
        // A closed pipe ends nothing here: the watch goes on, its state is in the repository.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

pub fn json(v: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("JSON values serialize")
    );
}

pub fn build(b: &build::Built) {
    if let Some(v) = &b.verdict {
        eprintln!("{v}");
        if !v.judgement.ok {
            return;
        }
    }
    let out = match &b.product {
        build::Product::Probe(out) => out,
        build::Product::Module(m) => {
            let k = &m.module;
            println!("{}  {}", k.sha256, m.path.display());
            say!(
                "built for {}, driver {}, with {} ({}); configure: [{}]; vermagic `{}`, {} kernel symbols checked",
                k.kernel_release,
                k.driver_version,
                k.compiler,
                k.compiler_text,
                k.configure.join(", "),
                k.vermagic.trim(),
                m.symbols_checked
            );
            return;
        }
    };
    println!("{}  {}", out.sha256, out.path.display());
    let has: Vec<_> = out
        .configure
        .iter()
        .filter(|c| c.passed)
        .map(|c| c.module.as_str())
        .collect();
    say!(
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

/// What `build --json` prints: the probe's build report, or the module's, with the VM's
/// `verdict` where it was proven (`--verify`).
pub fn build_json(b: &build::Built) {
    json(&build_value(b));
}

/// One build's JSON report (`build --json`; an array of them for `--driver ebpf,kmod`).
pub fn build_value(b: &build::Built) -> serde_json::Value {
    let mut v = match &b.product {
        build::Product::Probe(out) => serde_json::to_value(out),
        build::Product::Module(m) => serde_json::to_value(m),
    }
    .expect("JSON values serialize");
    if let (Some(verdict), Some(o)) = (&b.verdict, v.as_object_mut()) {
        o.insert(
            "verdict".into(),
            serde_json::to_value(verdict).expect("JSON values serialize"),
        );
    }
    if let (false, Some(o)) = (b.replaced.is_empty(), v.as_object_mut()) {
        o.insert(
            "replaced".into(),
            serde_json::to_value(&b.replaced).expect("JSON values serialize"),
        );
    }
    v
}

pub fn build_all(o: &build_all::Outcome) {
    let rs = &o.kernels;
    for r in rs {
        if let Some(v) = &r.verified {
            eprintln!("{} {} {}: {v}", r.arch, r.release, r.driver);
        }
    }
    let error = |r: &KernelResult| r.error.clone().unwrap_or_default();
    for r in rs.iter().filter(|r| r.status == Status::Unavailable) {
        say!("unavailable: {} {}: {}", r.arch, r.release, error(r));
    }
    for r in rs.iter().filter(|r| r.status == Status::Failed) {
        eprintln!(
            "\n--- {} {} {} failed:\n{}",
            r.arch,
            r.release,
            r.driver,
            error(r)
        );
    }
    println!(
        "{} built, {} from cache, {} unchanged, {} already published, {} unavailable from this mirror, {} failed in {:.1}s -> {}",
        o.built, o.cached, o.unchanged, o.skipped, o.unavailable, o.failed, o.seconds,
        o.published_to.display()
    );
}

pub fn plan(p: &build_all::Plan) {
    for i in p.items.iter().filter(|i| i.status == "build") {
        println!(
            "{:>2}  {:<8} {:<5} {:<40} ~{:.0}s",
            i.shard, i.item.arch, i.item.driver, i.item.release, i.item.cost_seconds
        );
    }
    let shard = p
        .shard
        .as_deref()
        .map(|s| format!("shard {s}: "))
        .unwrap_or_default();
    for i in p.items.iter().filter(|i| i.status == "no-compiler") {
        println!(
            "{:>2}  {:<8} {:<5} {:<40} no compiler: {}",
            i.shard,
            i.item.arch,
            i.item.driver,
            i.item.release,
            i.compiler.as_deref().unwrap_or_default()
        );
    }
    let no_compiler = match p.no_compiler {
        0 => String::new(),
        n => format!(", {} with no compiler", count(n, "module")),
    };
    println!(
        "{shard}{} to build (~{:.0} s of CPU), {} already published{no_compiler}; driver {}",
        p.build, p.cost_seconds, p.published, p.driver_version
    );
    if p.shards.len() > 1 {
        for l in &p.shards {
            println!(
                "  shard {}: {}, ~{:.0} s",
                l.shard,
                count(l.items, "item"),
                l.cost_seconds
            );
        }
        println!("  heaviest / mean: {:.3}", p.max_over_mean);
    }
}

pub fn check(c: &check::Checked, repair: bool) {
    for p in &c.found.problems {
        println!("{:?}: {p}", p.kind);
    }
    for r in &c.repairs {
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
    for (dir, s) in &c.report.signatures {
        if s != "absent" {
            println!("signature of {dir}/SHA256SUMS: {s}");
        }
    }
    println!(
        "{}, {}{}",
        count(c.report.probes, "probe"),
        count(c.report.problems.len(), "problem"),
        if repair { " left after --repair" } else { "" }
    );
}

pub fn check_json(c: &check::Checked, repair: bool) {
    let mut v = serde_json::to_value(&c.report).expect("JSON values serialize");
    if repair {
        v["found"] = serde_json::to_value(&c.found.problems).expect("JSON values serialize");
        v["repairs"] = serde_json::to_value(&c.repairs).expect("JSON values serialize");
    }
    json(&v);
}

pub fn inspect(
    k: &KernelTree,
    configs: &[String],
    compiler: Option<&Result<CompilerSource, KmodError>>,
    as_json: bool,
) {
    let support = k.driver_support();
    let origin = compiler.map(CompilerSource::origin_of);
    if as_json {
        let config: serde_json::Map<String, serde_json::Value> = configs
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
        return json(&serde_json::json!({
            "kernel": k,
            "uname": {"r": k.release, "v": k.uname_v, "m": k.uname_m()},
            "drivers": support,
            "config": config,
            "module_compiler": origin,
        }));
    }
    let rel = |p: &std::path::Path| p.strip_prefix(&k.root).unwrap_or(p).display().to_string();
    println!("kernel release  {}", k.release);
    let uname_v = k.uname_v.as_deref();
    println!(
        "uname -v        {}",
        uname_v.unwrap_or("(not recorded in the headers)")
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
        let v = os.version_id.as_deref().unwrap_or("?");
        println!("os-release      ID={} VERSION_ID={v}", os.id);
    }
    if let Some(c) = &k.compiler {
        println!("built with      {c}");
    }
    match &origin {
        Some(o) if o.source == "none" => println!("module compiler none: {}", o.note),
        Some(o) => {
            let nearest = if o.nearest { ", the nearest build" } else { "" };
            println!("module compiler {} `{}`{nearest}", o.source, o.name);
            println!("                {}", o.note);
        }
        None => {}
    }
    println!("objtree         {}", rel(&k.objtree));
    println!("srctree         {}", rel(&k.srctree));
    println!("config entries  {}", k.config.len());
    for c in configs {
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

pub fn drivers(table: &probeforge::releases::Table) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(", ")
        }
    };
    for r in &table.releases {
        let k = &r.known;
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
            let mirror = s.mirror.as_deref().unwrap_or("url");
            format!("{mirror} {name} (sha256 {})", &s.sha256[..12])
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
}

pub fn validate(report: &probeforge::validate::Report) {
    for c in &report.checks {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        println!("{mark} {:<22} {}", c.name, c.detail);
    }
    if report.programs.is_empty() && report.maps.is_empty() && report.api_version.is_none() {
        // A kernel module: its `vermagic` release and driver version.
        println!(
            "kernel module for {:?}, version {:?}",
            report.kernel_version.clone().unwrap_or_default(),
            report.probe_version.clone().unwrap_or_default()
        );
        return;
    }
    println!(
        "{}, {}, kernel_version {:?}, probe_version {:?}",
        count(report.programs.len(), "program"),
        count(report.maps.len(), "map"),
        report.kernel_version.clone().unwrap_or_default(),
        report.probe_version.clone().unwrap_or_default()
    );
}

pub fn targets(catalog: &probeforge::repo::Catalog) {
    let width = catalog
        .targets
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0);
    for t in &catalog.targets {
        // APT suites, or YUM repository paths.
        let mut places: Vec<&str> = t.suites.iter().map(|s| s.suite.as_str()).collect();
        places.extend(t.repos.iter().map(String::as_str));
        println!("{:<width$} {:<4} {}", t.name, t.kind, places.join(" "));
    }
}

pub fn kernels(all: &[probeforge::repo::KernelRecord]) {
    for k in all {
        let size: u64 = k.packages.iter().map(|p| p.size).sum();
        println!(
            "{:<16} {:<8} {:<32} #{:<4} {:<22} {}, {:.1} MiB",
            k.target,
            k.arch,
            k.release,
            k.kernel_version,
            k.origin,
            count(k.packages.len(), "package"),
            size as f64 / 1048576.0
        );
    }
}

pub fn fetched(f: &query::Fetched) {
    for p in &f.files {
        println!("{}  {}", p.sha256, p.path.display());
    }
}

pub fn verified(v: &verify::Verified) {
    let vd = &v.verdict;
    println!(
        "booted {} in {:.1}s ({})",
        vd.booted_release.as_deref().unwrap_or("?"),
        vd.seconds,
        vd.accel
    );
    for (r, j) in vd.reports.iter().zip(&v.judged) {
        println!("{}", j.line);
        for e in r["events"]["proof"].as_array().into_iter().flatten() {
            println!("     {}", event_line(e));
        }
        for l in probeforge::verify::userspace::event_lines(r) {
            println!("     {l}");
        }
    }
    if vd.reports.len() != v.sent {
        println!(
            "FAIL {} sent, {} reports back\n{}",
            count(v.sent, "probe"),
            vd.reports.len(),
            vd.console_tail
        );
    }
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

pub fn toolchains(cache: &std::path::Path) {
    use probeforge::toolchain::{root_in_cache, Manifest};
    for m in Manifest::embedded() {
        let there = root_in_cache(&m, cache).join(".complete").is_file();
        println!(
            "{:<20} LLVM {:<8} {:<7} {}{}",
            m.name,
            m.llvm_version,
            m.host_arch,
            count(m.packages.len(), "package"),
            if there { ", in cache" } else { "" }
        );
    }
    println!("{:<20} whatever clang/llc the host has (default)", "host");
}

pub fn toolchain(m: &probeforge::toolchain::Manifest, cache: &std::path::Path) {
    let root = probeforge::toolchain::root_in_cache(m, cache);
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
    let fetched = root.join(".complete").is_file();
    println!(
        "cache: {}{}",
        root.display(),
        if fetched { "" } else { " (not fetched)" }
    );
}

pub fn bazel(w: &bazel::Written) {
    for k in &w.kernels {
        println!("//:{:<32} {:<8} {}", k.name, k.arch, k.file);
    }
    println!(
        "{}: {}, {}{}, driver {}{}, toolchain {}",
        w.package.display(),
        count(w.kernels.len(), "kernel"),
        count(w.header_packages, "header package"),
        match w.pinned_by_download {
            0 => String::new(),
            n => format!(" ({n} pinned by downloading)"),
        },
        w.driver,
        w.driver_version
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default(),
        w.toolchain
    );
    println!(
        "build them: cd {} && bazel build //:all",
        w.package.display()
    );
}

/// What `probeforge site` (or `build-all --site`) wrote.
pub fn site(w: &probeforge::site::Written) {
    println!(
        "site: {}; {} published ({} verified in a VM), {} failed, {} not built yet; page code {} bytes, data {} bytes -> {}",
        count(w.kernels, "kernel"),
        w.published,
        w.verified,
        w.failed,
        w.not_built,
        w.code_bytes,
        w.data_bytes,
        w.files.first().map(|f| f.display().to_string()).unwrap_or_default()
    );
}

/// `list-kernels --format driverkit`: the configs written.
pub fn driverkit_grid(written: &[std::path::PathBuf], dir: &std::path::Path, as_json: bool) {
    match as_json {
        true => json(&serde_json::json!({"dir": dir, "configs": written})),
        false => {
            for p in written {
                println!("{}", p.display());
            }
            say!(
                "{} under {}",
                count(written.len(), "driverkit config"),
                dir.display()
            );
        }
    }
}
