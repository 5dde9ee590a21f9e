//! Falco's kernel modules proven in their kernels, as a user runs probeforge: `build --driver
//! kmod` from a Debian target (the kernel's own compiler chosen from its headers, pinned by
//! digest), then one `verify` boot per kernel under QEMU with every module of it: each loaded
//! with `finit_module`, its devices opened and mapped, capture enabled through its ioctls, the
//! workload's events decoded with its own driver's schema, then unloaded for the next one.
//! Drivers: 8.0.0+driver (Debian's `falcosecurity-libs` 0.20.0 orig tarball) and 9.1.0+driver
//! (Debian's `falcosecurity-scap-dkms` 0.23.2), on the newest kernel of each Debian line picked
//! from the live index (5.10 also the 2022 dkms driver, and Debian's sysdig on it). A module built for another kernel goes into the same boot and must be
//! refused by the kernel, and said so.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;

/// The drivers a kernel line gets: (version, source). 5.10 also gets bookworm's 2022 dkms
/// driver (the older ioctls: `PPM_IOCTL_ENABLE_CAPTURE`).
fn sources(line: &str) -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![
        ("8.0.0+driver", libs_0_20_0()),
        ("9.1.0+driver", drivers::scap_dkms_0_23_2()),
    ];
    if line == "5.10" {
        v.push((DRIVER_2022, scap_dkms()));
    }
    v
}

const DRIVER_2022: &str = "0.1.1dev+git20220316.e5c53d64";

/// The compiler each line's kernels were built with, pinned in `toolchain/`.
fn pinned_compiler(line: &str) -> &'static str {
    match line {
        "5.10" => "pinned gcc-10-debian11",
        "6.1" => "pinned gcc-12-debian12",
        _ => "pinned gcc-14-debian13",
    }
}

/// The modules of one kernel line, built by the CLI into a directory kept for the test run.
struct Line {
    line: &'static str,
    kernel: KernelRecord,
    _dir: tempfile::TempDir,
    /// `<version>.ko` for each driver.
    modules: Vec<(&'static str, PathBuf)>,
}

fn build_line(line: &'static str) -> Line {
    let (kernel, _) = drivers::kernel_line(line, Arch::X86_64);
    let dir = tmpdir();
    let mut modules = Vec::new();
    for (version, src) in sources(line) {
        let out = dir.path().join(version);
        let (code, stdout, err) = run(&[
            "build",
            "--target",
            &kernel.target,
            "--kernel",
            &kernel.release,
            "--driver",
            "kmod",
            "--driver-source",
            src.to_str().unwrap(),
            "--driver-version",
            version,
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(code, 0, "{version} on {}:\n{err}", kernel.release);
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["driver_version"], version, "{stdout}");
        assert_eq!(v["kernel_release"], kernel.release.as_str(), "{stdout}");
        assert!(v["symbols_checked"].as_u64().unwrap() > 1000, "{stdout}");
        // The kernel's own compiler, chosen from its headers.
        assert_eq!(v["compiler"], pinned_compiler(line), "{stdout}");
        // Both drivers' modules have the same Falco name: each goes in under its version.
        let ko = dir.path().join(format!("{line}-{version}.ko"));
        std::fs::rename(v["path"].as_str().unwrap(), &ko).unwrap();
        modules.push((version, ko));
    }
    Line {
        line,
        kernel,
        _dir: dir,
        modules,
    }
}

/// Each line built once per test run (another line's test borrows a module of it).
fn line(line: &'static str) -> &'static Line {
    static L: [OnceLock<Line>; 4] = [const { OnceLock::new() }; 4];
    let i = drivers::LINES.iter().position(|l| *l == line).unwrap();
    L[i].get_or_init(|| build_line(line))
}

/// The kernel image package of a Debian kernel (7.x keeps it in `linux-binary-*`).
fn image(k: &KernelRecord) -> PathBuf {
    let name = if k.release.starts_with("7.") {
        format!("linux-binary-unsigned-{}", k.release)
    } else {
        format!("linux-image-{}-unsigned", k.release)
    };
    debian_package(&k.target, k.arch, &name)
}

/// One boot of `l`'s kernel with its modules (and `foreign`, a module of another kernel, which
/// must be refused); every module of its own proven.
fn prove(l: &Line, foreign: Option<&Path>) {
    let img = image(&l.kernel);
    let mut a: Vec<String> = vec![
        "verify".into(),
        "--json".into(),
        "--kernel-image".into(),
        img.display().to_string(),
    ];
    for (_, src) in sources(l.line) {
        a.extend(["--driver-source".into(), src.display().to_string()]);
    }
    a.extend(l.modules.iter().map(|(_, p)| p.display().to_string()));
    a.extend(foreign.map(|p| p.display().to_string()));
    let (code, out, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let want = if foreign.is_some() { 1 } else { 0 };
    assert_eq!(code, want, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted_release"], l.kernel.release.as_str(), "{v}");
    let reports = v["reports"].as_array().unwrap();
    let report = |p: &Path| {
        let name = p.file_name().unwrap().to_str().unwrap();
        reports
            .iter()
            .find(|r| r["probe"] == name)
            .unwrap_or_else(|| panic!("no report for {name}: {v}"))
    };
    for (version, ko) in &l.modules {
        let r = report(ko);
        let j = probeforge::verify::judge(r);
        assert!(j.ok, "{version} on {}: {}", l.kernel.release, j.line);
        assert_eq!(r["kind"], "kmod", "{r}");
        assert_eq!(r["module"], "falco", "{r}");
        assert_eq!(r["version"], *version, "{r}");
        assert_eq!(r["unloaded"], true, "{r}");
        // Unsigned and out of tree: the kernel says so in its taint, and loads it.
        let taint = r["taint"]["flags"].to_string();
        assert!(taint.contains("out-of-tree"), "{taint}");
        let ev = &r["events"];
        assert_eq!(ev["ok"], true, "{version}: {:#}", ev["expectations"]);
        assert_eq!(ev["errors"].as_array().map(Vec::len), Some(0), "{ev}");
        assert!(ev["decoded"].as_u64().unwrap() >= 10, "{version}: {ev}");
        let proof = ev["proof"].as_array().unwrap();
        assert_eq!(proof.len(), 3, "{version}: {proof:#?}");
        assert_eq!(proof[2]["name"], "execve", "{version}: {}", proof[2]);
        let engine = match *version {
            DRIVER_2022 => "ENABLE_CAPTURE",
            _ => "ENABLE_SYSCALL/ENABLE_TP",
        };
        assert_eq!(r["capture"]["engine"], engine, "{version}: {r}");
    }
    if let Some(f) = foreign {
        let r = report(f);
        let j = probeforge::verify::judge(r);
        assert!(!j.ok, "{}", j.line);
        assert!(
            j.line.contains("built for another kernel"),
            "the refusal says why: {}",
            j.line
        );
        // ENOEXEC: the kernel's "disagrees about version of symbol module_layout".
        assert_eq!(r["load_errno"], 8, "{r}");
    }
}

/// Bullseye's 5.10 (gcc-10), with the 2022 driver beside 8.0.0 and 9.1.0.
#[test]
fn modules_of_8_0_0_9_1_0_and_2022_load_and_capture_on_debian_5_10() {
    prove(line("5.10"), None);
}

/// Falco's real userspace on a module: Debian's sysdig 0.29.3 (bookworm, its 2022 libscap)
/// with the 2022 dkms driver built for 5.10 under the name its kmod engine opens (`scap`,
/// `--module-name`). sysdig's eBPF path fails on this kernel in its own ring mapping; its
/// kernel module path captures the workload.
#[test]
fn debians_sysdig_captures_through_the_2022_module_on_debian_5_10() {
    let l = line("5.10");
    let dir = tmpdir();
    let (code, stdout, err) = run(&[
        "build",
        "--target",
        &l.kernel.target,
        "--kernel",
        &l.kernel.release,
        "--driver",
        "kmod",
        "--driver-source",
        scap_dkms().to_str().unwrap(),
        "--module-name",
        "scap",
        "-o",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let ko = v["path"].as_str().unwrap();
    let info = probeforge::kmod::validate::modinfo(&std::fs::read(ko).unwrap()).unwrap();
    assert!(info.contains(&("name".into(), "scap".into())), "{info:?}");
    let (code, out, err) = run(&[
        "verify",
        "--json",
        "--kernel-image",
        image(&l.kernel).to_str().unwrap(),
        "--userspace",
        "sysdig",
        ko,
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sysdig = v["userspace"]["sysdig_version"].as_str().unwrap_or("");
    assert!(sysdig.starts_with("0.29.3"), "{v}");
    let r = &v["reports"][0];
    assert_eq!(r["kind"], "kmod", "{r}");
    assert_eq!(r["module"], "scap", "{r}");
    assert_eq!(r["sysdig"]["ok"], true, "{r:#}");
    assert_eq!(r["unloaded"], true, "{r}");
}

#[test]
fn modules_of_8_0_0_and_9_1_0_load_and_capture_on_debian_6_1() {
    prove(line("6.1"), None);
}

/// The 6.1 module goes into the 6.12 boot: the kernel refuses it (another `module_layout`).
#[test]
fn modules_of_8_0_0_and_9_1_0_load_and_capture_on_debian_6_12_and_a_6_1_module_is_refused() {
    let (six_one, six_twelve) = (line("6.1"), line("6.12"));
    let other = &six_one.modules[1].1;
    // `validate` refuses it for the 6.12 kernel and takes it for its own.
    let validate = |release: &str| {
        run(&[
            "validate",
            other.to_str().unwrap(),
            "--kernel-release",
            release,
            "--driver-version",
            "9.1.0+driver",
            "--arch",
            "x86_64",
        ])
    };
    let (code, out, err) = validate(&six_twelve.kernel.release);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FAIL vermagic") && out.contains(&six_one.kernel.release),
        "{out}"
    );
    let (code, out, err) = validate(&six_one.kernel.release);
    assert_eq!(code, 0, "{out}{err}");
    let foreign = tmpdir();
    let renamed = foreign.path().join("from-6.1.ko");
    std::fs::copy(other, &renamed).unwrap();
    prove(six_twelve, Some(&renamed));
}

#[test]
fn modules_of_8_0_0_and_9_1_0_load_and_capture_on_debian_7x() {
    prove(line("7.x"), None);
}

/// The nightly job with both drivers: one download of the kernel's set serves the probe and
/// the module; both are published under Falco's names beside each other, in `SHA256SUMS` and
/// `index.json`; the module has the very bytes `build --driver kmod` made; the next night
/// finds both published and builds nothing.
#[test]
fn build_all_publishes_the_probe_and_the_module_then_skips_both() {
    let l = line("6.1");
    let k = &l.kernel;
    let repo = tmpdir();
    let only = format!("^{}$", regex::escape(&k.release));
    let mut a = build_all_args(&["debian-bookworm", "--arch", "x86_64"], &only, repo.path());
    a.extend(["--driver".into(), "ebpf,kmod".into()]);
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let results = v["kernels"].as_array().unwrap();
    let drivers: Vec<&str> = results
        .iter()
        .map(|r| r["driver"].as_str().unwrap())
        .collect();
    assert_eq!(drivers, ["ebpf", "kmod"], "{v:#}");
    let dir = repo.path().join("8.0.0+driver/x86_64");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("index.json")).unwrap()).unwrap();
    for (r, ext) in results.iter().zip(["o", "ko"]) {
        assert!(
            matches!(r["status"].as_str(), Some("built" | "cached")),
            "{r}"
        );
        let file = falco_file(k, ext);
        assert_eq!(r["file"], file.as_str(), "{r}");
        let digest = sha256_file(&dir.join(&file));
        assert_eq!(r["sha256"], digest.as_str(), "{r}");
        assert!(
            sums.lines().any(|l| l == format!("{digest}  {file}")),
            "{file} not in SHA256SUMS:\n{sums}"
        );
        assert!(
            index["probes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["sha256"] == digest.as_str()),
            "{file} not in index.json"
        );
    }
    let built = &l
        .modules
        .iter()
        .find(|(v, _)| *v == "8.0.0+driver")
        .unwrap()
        .1;
    assert_eq!(
        results[1]["sha256"],
        sha256_file(built).as_str(),
        "the batch's module is the single build's"
    );
    let (code, out, err) = run(&a);
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["skipped"], 2, "{v:#}");
    assert_eq!(v["built"], 0, "{v:#}");
}

/// What the kernel's policy says, plainly: with `module.sig_enforce=1` the unsigned module is
/// rejected (the kernel's own line), under `--lockdown integrity` loading it is forbidden.
/// Both refusals in one boot each of the 6.1 kernel.
#[test]
fn signature_enforcement_and_lockdown_refuse_an_unsigned_module_plainly() {
    let l = line("6.1");
    let img = image(&l.kernel);
    let ko = &l.modules[1].1;
    for (flag, value, why, kernel_said) in [
        (
            "--cmdline",
            "module.sig_enforce=1",
            "accepts only signed modules",
            "unsigned module",
        ),
        (
            "--lockdown",
            "integrity",
            "forbids loading modules",
            "Lockdown",
        ),
    ] {
        let (code, out, err) = run(&[
            "verify",
            "--json",
            "--no-events",
            "--kernel-image",
            img.to_str().unwrap(),
            flag,
            value,
            ko.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{flag} {value}: {err}\n{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let r = &v["reports"][0];
        let j = probeforge::verify::judge(r);
        assert!(!j.ok, "{}", j.line);
        assert!(j.line.contains(why), "{flag} {value}: {}", j.line);
        assert!(j.line.contains(kernel_said), "{flag} {value}: {}", j.line);
    }
}

/// A kernel whose exact compiler nothing here has (bookworm's arm64 kernels under
/// `--exact-compiler`; forky's, which this test used, now resolve from forky's own indexes):
/// `build-all --driver kmod` fails it, exits 1, and the repository keeps the failure
/// (driver, kernel, the one-line reason, the whole error, the packages) in `index.json` and
/// `INDEX.md`, where a later successful run would drop it.
#[test]
fn build_all_keeps_a_failed_module_with_its_reason() {
    // Bookworm's arm64 kernels name `gcc-12 (Debian 12.2.0-14+deb12u1)`; its only arm64
    // compiler on this x86_64 host is the cross build of 12.2.0-14: `--exact-compiler` refuses
    // the nearest build, so no compiler builds this module.
    let k = lister()
        .list("debian-bookworm", &[Arch::Aarch64])
        .expect("listing debian-bookworm")
        .into_iter()
        .filter(|k| k.origin == "bookworm" && k.release.ends_with("-arm64"))
        .filter(|k| !k.release.contains("-cloud-") && !k.release.contains("-rt-"))
        .max_by(|a, b| {
            probeforge::repo::apt::compare_versions(&a.packages[0].version, &b.packages[0].version)
        })
        .expect("an arm64 kernel in bookworm");
    let repo = tmpdir();
    let only = format!("^{}$", regex::escape(&k.release));
    let mut a = vec!["--exact-compiler".to_owned()];
    a.extend(build_all_args(
        &["debian-bookworm", "--arch", "aarch64"],
        &only,
        repo.path(),
    ));
    a.extend(["--driver".into(), "kmod".into()]);
    let (code, out, err) = run(&a);
    assert_eq!(code, 1, "{err}\n{out}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.path().join("index.json")).unwrap()).unwrap();
    let failures = index["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{index:#}");
    let f = &failures[0];
    assert_eq!(f["file"], falco_file(&k, "ko").as_str());
    assert_eq!(f["driver"], "kmod");
    assert_eq!(f["driver_version"], "8.0.0+driver");
    let reason = f["reason"].as_str().unwrap();
    assert!(reason.contains("no compiler"), "{reason}");
    assert!(
        f["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i[0].as_str().unwrap().starts_with("linux-headers-")),
        "{f}"
    );
    let md = std::fs::read_to_string(repo.path().join("INDEX.md")).unwrap();
    assert!(
        md.contains("## Failed (1)") && md.contains(&k.release),
        "{md}"
    );
}

/// An arm64 module, cross-built on this x86_64 host by trixie's cross gcc-14 (the very
/// compiler text of trixie's arm64 kernels) with amd64 kbuild programs, loaded and captured in
/// its kernel under qemu-system-aarch64 (whose CPU has no FEAT_LPA2: with it, Falco's ring info
/// mapping faults in every consumer).
#[test]
fn an_arm64_module_cross_built_for_trixie_6_12_loads_and_captures() {
    let (k, _) = common::debian_kernel("trixie", Arch::Aarch64);
    let dir = tmpdir();
    let (code, stdout, err) = run(&[
        "build",
        "--target",
        &k.target,
        "--kernel",
        &k.release,
        "--arch",
        "aarch64",
        "--driver",
        "kmod",
        "--driver-source",
        drivers::scap_dkms_0_23_2().to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["compiler"], "pinned gcc-14-debian13-arm64-cross",
        "{stdout}"
    );
    assert!(
        v["vermagic"].as_str().unwrap().ends_with(" aarch64"),
        "{stdout}"
    );
    let ko = v["path"].as_str().unwrap();
    let (code, out, err) = run(&[
        "verify",
        "--json",
        "--kernel-image",
        image(&k).to_str().unwrap(),
        "--driver-source",
        drivers::scap_dkms_0_23_2().to_str().unwrap(),
        ko,
    ]);
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["booted_release"], k.release.as_str(), "{v}");
    let r = &v["reports"][0];
    let j = probeforge::verify::judge(r);
    assert!(j.ok, "{}", j.line);
    assert_eq!(r["events"]["ok"], true, "{:#}", r["events"]);
}
