//! The driver matrix: every driver source of `tests/common/drivers.rs` (GitHub archives
//! 3.0.1-7.0.0, Debian's orig tarball 8.0.0, dkms 0.23.2 = 9.1.0, the 2022 dkms driver) on the
//! newest Debian kernel of each line (5.10, 6.1, 6.12, 7.x), amd64 and arm64, built in-process
//! two at a time. Prints each outcome (patches applied, or the error's first line) with clang
//! and llc CPU seconds and the wall time of the whole build (unpack, configure, patch, compile,
//! validate), and every cell where `probeforge drivers` says otherwise. The old drivers' patched
//! cells (3.0.1 and 4.0.0 on 6.12 and 7.x, both arches) are in it; the tests build one arch.
//!
//! Then every probe is proven: `probeforge validate` for its kernel, driver and arch, and one
//! `probeforge verify` boot per kernel (QEMU, two kernels at a time) with all of that kernel's
//! probes and their driver sources: every program through the kernel's verifier, every map
//! created, the loader's workload captured and decoded with each driver's own tables. An arm64
//! kernel needs the aarch64 loader that `.ci/setup` builds into `target/init/`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/drivers.rs"]
mod drivers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use probeforge::kernel::Arch;
use probeforge::releases::Outcome;
use probeforge::repo::KernelRecord;
use rayon::prelude::*;

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

/// What one kernel's boot said of each of its probes.
struct Boot {
    line: &'static str,
    arch: Arch,
    release: String,
    /// `probeforge verify` as a whole: tables compiled, image read, VM booted, reports judged.
    wall: f64,
    /// The VM's own time (boot to verdict) and how many boots it took.
    vm: Option<(f64, u64)>,
    /// Driver version -> (ok, the judgement's reason).
    probes: BTreeMap<String, (bool, String)>,
}

/// The kernel image package of a kernel: Debian 7.x keeps the kernel in `linux-binary-*`
/// (its `linux-image-R` is a meta-package), the older lines in `linux-image-R-unsigned`.
fn kernel_image(k: &KernelRecord, line: &str) -> Result<PathBuf, String> {
    let name = match line {
        "7.x" => format!("linux-binary-unsigned-{}", k.release),
        _ => format!("linux-image-{}-unsigned", k.release),
    };
    let p = common::lister()
        .find_package(&k.target, k.arch, &name)
        .map_err(|e| format!("{name}: {}", chain(&e)))?;
    common::net()
        .client
        .fetch_verified(&p.url, &p.sha256, Some(p.size))
        .map(|(f, _)| f)
        .map_err(|e| format!("{name}: {}", chain(&e)))
}

/// `probeforge validate` of a probe for its kernel, driver version and arch: Ok, or the failed
/// checks.
fn validate(probe: &Path, release: &str, driver: &str, arch: Arch) -> Result<(), String> {
    let (code, out, err) = common::run(&[
        "validate",
        probe.to_str().unwrap(),
        "--kernel-release",
        release,
        "--driver-version",
        driver,
        "--arch",
        arch.uname_m(),
    ]);
    if code == 0 {
        return Ok(());
    }
    let text = format!("{out}{err}");
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.to_lowercase().contains("fail") || l.starts_with("error"))
        .collect();
    Err(if failed.is_empty() {
        text.trim().lines().last().unwrap_or("").to_owned()
    } else {
        failed.join("; ")
    })
}

/// The line of an error chain that says what failed (a compiler's `error:` line, without the
/// command before it), else its first line.
fn what_failed(chain: &str) -> String {
    let line = chain
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_else(|| chain.lines().next().unwrap_or(""));
    line.rsplit_once("`): ")
        .map_or(line, |(_, tail)| tail)
        .to_owned()
}

/// `probeforge verify --json` of probes (driver version, probe, source) in one kernel image:
/// (VM seconds, boots, each probe's judgement), or why nothing was judged.
#[allow(clippy::type_complexity)]
fn verify(
    image: &Path,
    release: &str,
    probes: &[&(String, PathBuf, PathBuf)],
    dir: &Path,
    extra: &[&str],
) -> Result<(f64, u64, Vec<(String, (bool, String))>), String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut a: Vec<String> = vec![
        "verify".into(),
        "--json".into(),
        "--timeout".into(),
        "1800".into(),
        "--kernel-image".into(),
        image.display().to_string(),
    ];
    a.extend(extra.iter().map(|e| e.to_string()));
    // Each probe under its driver's name: every driver's probe has the same Falco file name.
    let mut names = Vec::new();
    for (v, probe, src) in probes {
        let named = dir.join(format!("{v}.o"));
        std::fs::copy(probe, &named).unwrap();
        names.push(named.display().to_string());
        a.extend(["--driver-source".into(), src.display().to_string()]);
    }
    a.extend(names);
    let (code, out, err) = common::run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let Some(reports) = v["reports"].as_array() else {
        return Err(format!("verify exited {code}: {}", what_failed(&err)));
    };
    if v["booted_release"] != release {
        return Err(format!(
            "the VM booted {}, not {release}",
            v["booted_release"]
        ));
    }
    let judged = probes
        .iter()
        .map(|(ver, _, _)| {
            let name = format!("{ver}.o");
            let j = match reports.iter().find(|r| r["probe"] == name.as_str()) {
                Some(r) => {
                    let j = probeforge::verify::judge(r);
                    // The summary line, then the first failure.
                    let reason: Vec<&str> = j.line.lines().take(2).map(str::trim).collect();
                    (j.ok, reason.join(" | "))
                }
                None => (false, format!("no report for {name} (exit {code})")),
            };
            (ver.clone(), j)
        })
        .collect();
    Ok((
        v["seconds"].as_f64().unwrap_or(0.0),
        v["boots"].as_u64().unwrap_or(0),
        judged,
    ))
}

/// One kernel's probes proven in one boot. A driver source whose event tables do not compile
/// for the guest's arch would stop `verify` before the boot for every probe; its probes fail
/// with that reason and get a second boot without events, to say whether they load at all.
fn boot(
    line: &'static str,
    k: &KernelRecord,
    probes: &[(String, PathBuf, PathBuf)],
    dir: &Path,
    tc: &probeforge::toolchain::Toolchain,
) -> Boot {
    let w = Instant::now();
    let mut b = Boot {
        line,
        arch: k.arch,
        release: k.release.clone(),
        wall: 0.0,
        vm: None,
        probes: BTreeMap::new(),
    };
    let image = match kernel_image(k, line) {
        Ok(i) => i,
        Err(e) => {
            for (v, _, _) in probes {
                b.probes
                    .insert(v.clone(), (false, format!("no kernel image: {e}")));
            }
            return b;
        }
    };
    std::fs::create_dir_all(dir).unwrap();
    let (mut events, mut no_tables) = (Vec::new(), Vec::new());
    for p in probes {
        match probeforge::verify::events::tables_from_source(&p.2, k.arch, tc, dir) {
            Ok(_) => events.push(p),
            Err(e) => no_tables.push((p, what_failed(&chain(&e)))),
        }
    }
    let mut runs = vec![(events, Vec::new(), dir.join("events"))];
    if !no_tables.is_empty() {
        let p = no_tables.iter().map(|(p, _)| *p).collect();
        runs.push((p, vec!["--no-events"], dir.join("no-events")));
    }
    for (probes, extra, d) in runs {
        if probes.is_empty() {
            continue;
        }
        match verify(&image, &k.release, &probes, &d, &extra) {
            Ok((secs, boots, judged)) => {
                let (s, n) = b.vm.unwrap_or((0.0, 0));
                b.vm = Some((s + secs, n + boots));
                for (v, j) in judged {
                    b.probes.insert(v, j);
                }
            }
            Err(why) => {
                for (v, _, _) in probes {
                    b.probes.insert(v.clone(), (false, why.clone()));
                }
            }
        }
    }
    for ((v, _, _), why) in &no_tables {
        let loads = b.probes.get(v).map_or(String::new(), |(_, l)| l.clone());
        b.probes.insert(
            v.clone(),
            (
                false,
                format!(
                    "no event tables for {}: {why}; without events: {loads}",
                    k.arch
                ),
            ),
        );
    }
    b.wall = w.elapsed().as_secs_f64();
    b
}

fn main() {
    let tc = probeforge::toolchain::Toolchain::find(None, None).expect("clang and llc");
    let patches = probeforge::patch::Catalog::embedded();
    let drivers = drivers::matrix_drivers();
    let mut kernels = Vec::new();
    // The arm64 guests boot slower under TCG: theirs first, while the rest builds.
    for arch in [Arch::Aarch64, Arch::X86_64] {
        for line in drivers::LINES {
            let (k, files) = drivers::kernel_line(line, arch);
            let headers = common::header_files(&k, &files);
            kernels.push((line, arch, k.release.clone(), headers, k));
        }
    }
    let t = common::tmpdir();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    // Kernel by kernel: its cells built two at a time, each probe written and validated, then
    // the kernel goes to two boot workers while the next kernel builds.
    let mut results = Vec::new();
    let mut validated: BTreeMap<(&str, &str, Arch), Result<(), String>> = BTreeMap::new();
    let mut build_wall = std::time::Duration::ZERO;
    let (tx, rx) = std::sync::mpsc::channel::<(&str, &KernelRecord, Vec<_>)>();
    let rx = Mutex::new(rx);
    let boots = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let next = rx.lock().unwrap().recv();
                let Ok((line, k, probes)) = next else { break };
                let dir = t.path().join(format!("boot-{}-{line}", k.arch.uname_m()));
                let b = boot(line, k, &probes, &dir, &tc);
                eprintln!(
                    "booted {} ({line} {}): {:.0} s, {:?}",
                    b.release,
                    b.arch.uname_m(),
                    b.wall,
                    b.probes
                );
                boots.lock().unwrap().push(b);
            });
        }
        for (ki, (line, arch, release, headers, k)) in kernels.iter().enumerate() {
            let w = Instant::now();
            let built: Vec<_> = pool.install(|| {
                drivers
                    .par_iter()
                    .enumerate()
                    .map(|(di, d)| {
                        let req = probeforge::pipeline::Request {
                            headers: headers.clone(),
                            kernel_release: None,
                            driver_source: d.path.clone(),
                            driver_version: None,
                            target_id: None,
                            kernel_version: None,
                            arch: Some(*arch),
                            out_dir: t.path().join(format!("{ki}-{di}")),
                            scratch: None,
                            driver_digest: None,
                            header_digests: Vec::new(),
                            file_release: None,
                        };
                        let w = Instant::now();
                        let r = probeforge::pipeline::build_probe(&req, &tc, &patches);
                        let cell = match &r {
                            Ok((o, _)) => Outcome::built(&o.patches),
                            Err(e) => Outcome::Cannot(chain(e)),
                        };
                        // build_probe returns the bytes; the CLI writes them, the bench too.
                        let r = r.map(|(o, bytes)| {
                            std::fs::create_dir_all(&req.out_dir).unwrap();
                            std::fs::write(&o.path, bytes).unwrap();
                            o
                        });
                        (*line, *arch, release.clone(), d, r, cell, w.elapsed())
                    })
                    .collect()
            });
            build_wall += w.elapsed();
            eprintln!(
                "built {release} ({line} {}): {} of {} in {:.0} s",
                arch.uname_m(),
                built.iter().filter(|b| b.4.is_ok()).count(),
                built.len(),
                w.elapsed().as_secs_f64()
            );
            let mut probes = Vec::new();
            for (_, _, _, d, r, _, _) in &built {
                let Ok(o) = r else { continue };
                let v = validate(&o.path, release, &o.driver_version, *arch);
                if v.is_ok() {
                    probes.push((o.driver_version.clone(), o.path.clone(), d.path.clone()));
                }
                validated.insert((d.version, line, *arch), v);
            }
            if !probes.is_empty() {
                tx.send((line, k, probes)).unwrap();
            }
            results.extend(built);
        }
        drop(tx);
    });
    let boot_wall = started.elapsed().as_secs_f64();
    let wall = build_wall;
    let table = probeforge::releases::Table::embedded();
    let (mut cpu, mut probe_wall, mut built, mut differ) = (0.0, 0.0, 0, Vec::new());
    println!(
        "{:<30} {:<5} {:<7} {:<34} {:>7} {:>7}  outcome",
        "driver", "line", "arch", "kernel", "cpu s", "wall s"
    );
    for (line, arch, release, d, r, cell, w) in &results {
        let (secs, what) = match r {
            Ok(o) => {
                built += 1;
                let c =
                    o.timing.probe.clang_cpu.as_secs_f64() + o.timing.probe.llc_cpu.as_secs_f64();
                cpu += c;
                probe_wall += w.as_secs_f64();
                (
                    format!("{c:.1}"),
                    format!("{} as {}", cell, o.driver_version),
                )
            }
            Err(_) => ("-".to_owned(), cell.to_string()),
        };
        println!(
            "{:<30} {:<5} {:<7} {:<34} {:>7} {:>7.1}  {what}",
            d.version,
            line,
            arch.uname_m(),
            release,
            secs,
            w.as_secs_f64()
        );
        match table.expected(d.version, line, *arch) {
            Some(e) if e.same_kind(cell) => {}
            e => differ.push(format!(
                "{} {line} {}: built {cell}, table says {}",
                d.version,
                arch.uname_m(),
                e.map_or("nothing".to_owned(), |e| e.to_string())
            )),
        }
    }
    println!(
        "\n{} cells, {built} probes built in {:.0} s wall: per probe {:.1} s clang+llc CPU, {:.1} s \
         build wall (2 jobs, beside the boots), {:.1} s of the build phases' wall",
        results.len(),
        wall.as_secs_f64(),
        cpu / built.max(1) as f64,
        probe_wall / built.max(1) as f64,
        wall.as_secs_f64() / built.max(1) as f64
    );
    for d in &differ {
        println!("DIFFERS {d}");
    }

    let mut boots = boots.into_inner().unwrap();
    boots.sort_by_key(|b| {
        (
            b.arch.uname_m(),
            drivers::LINES.iter().position(|l| *l == b.line),
        )
    });

    println!(
        "\n{:<7} {:<5} {:<34} {:>6} {:>9} {:>6} {:>6}",
        "arch", "line", "kernel", "probes", "verify s", "vm s", "boots"
    );
    for b in &boots {
        let ok = b.probes.values().filter(|(ok, _)| *ok).count();
        let (vm, n) = b.vm.map_or(("-".into(), "-".into()), |(s, n)| {
            (format!("{s:.0}"), n.to_string())
        });
        println!(
            "{:<7} {:<5} {:<34} {:>6} {:>9.0} {:>6} {:>6}",
            b.arch.uname_m(),
            b.line,
            b.release,
            format!("{ok}/{}", b.probes.len()),
            b.wall,
            vm,
            n
        );
    }

    // The matrix: build seconds (wall) of each probe and its verdict.
    let columns: Vec<(Arch, &str)> = [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .flat_map(|a| drivers::LINES.map(|l| (a, l)))
        .collect();
    print!("\n{:<30}", "driver \\ arch line");
    for (a, l) in &columns {
        print!(" {:>13}", format!("{} {l}", a.debian()));
    }
    println!();
    let mut failures = Vec::new();
    let (mut verified_ok, mut verified) = (0, 0);
    for d in &drivers {
        print!("{:<30}", d.version);
        for (a, l) in &columns {
            let r = results
                .iter()
                .find(|r| r.0 == *l && r.1 == *a && r.3.version == d.version)
                .unwrap();
            let cell = match (&r.4, validated.get(&(d.version, *l, *a))) {
                (Err(_), _) => "cannot".to_owned(),
                (Ok(_), Some(Err(e))) => {
                    failures.push(format!("{} {l} {}: validate: {e}", d.version, a.uname_m()));
                    format!("{:.0}s invalid", r.6.as_secs_f64())
                }
                (Ok(o), _) => {
                    let b = boots.iter().find(|b| b.line == *l && b.arch == *a);
                    let verdict = b.and_then(|b| b.probes.get(&o.driver_version));
                    verified += 1;
                    let word = match verdict {
                        Some((true, _)) => {
                            verified_ok += 1;
                            "ok"
                        }
                        Some((false, why)) => {
                            failures.push(format!(
                                "{} {l} {} ({}): {why}",
                                d.version,
                                a.uname_m(),
                                b.unwrap().release
                            ));
                            "FAIL"
                        }
                        None => "unbooted",
                    };
                    format!("{:.0}s {word}", r.6.as_secs_f64())
                }
            };
            print!(" {cell:>13}");
        }
        println!();
    }
    let vm_total: f64 = boots.iter().filter_map(|b| b.vm.map(|v| v.0)).sum();
    let valid = validated.values().filter(|v| v.is_ok()).count();
    println!(
        "\n{} cells: {built} built, {valid} validated, {verified_ok}/{verified} verified in {} \
         boots (whole run {:.0} s wall, 2 VMs at a time beside the builds; {:.0} s of VM time, {:.1} s per probe)",
        results.len(),
        boots.len(),
        boot_wall,
        vm_total,
        vm_total / verified.max(1) as f64
    );
    for f in &failures {
        println!("FAILED {f}");
    }
}
