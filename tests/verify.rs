//! Probes proven in their own kernels: Debian's 5.10, 6.1 and 6.12 amd64 kernels booted under
//! QEMU (TCG) with probeforge's initramfs; every program of the real Falco probes (libs 0.20.0
//! and the 2022 dkms driver) goes through that kernel's verifier. A corrupted instruction and a
//! probe for another kernel are reported. The flavours that broke verification get a boot each:
//! 7.x (kernel in `linux-binary-*`, behind a meta-package), arm64-16k (16 KiB pages) and
//! rt-amd64 (a console that loses output); a kernel that never starts is named as such.

mod common;
#[path = "common/images.rs"]
mod images;

use std::fs;
use std::path::PathBuf;

use common::*;
use images::*;
use object::{Object, ObjectSection};
use probeforge::kernel::Arch;

/// Builds both real probes for a Debian release's kernel; returns (release, image package,
/// probe paths).
fn probes_for(suite: &str, t: &std::path::Path) -> (String, PathBuf, Vec<PathBuf>) {
    probes_for_arch(suite, Arch::X86_64, t)
}

fn probes_for_arch(
    suite: &str,
    arch: Arch,
    t: &std::path::Path,
) -> (String, PathBuf, Vec<PathBuf>) {
    let (k, files) = debian_kernel(suite, arch);
    let headers: Vec<String> = header_files(&k, &files)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut probes = Vec::new();
    let mut drivers = vec![(libs_0_20_0(), Some("8.0.0+driver"))];
    // The 2022 driver's eBPF probe predates arm64 support (no raw syscall tracepoints there).
    if arch == Arch::X86_64 {
        drivers.push((scap_dkms(), None));
    }
    for (i, (src, ver)) in drivers.into_iter().enumerate() {
        let out = t.join(format!("out{i}"));
        let mut a = vec![
            "build".to_owned(),
            "--driver-source".into(),
            src.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--json".into(),
        ];
        if let Some(v) = ver {
            a.extend(["--driver-version".into(), v.into()]);
        }
        a.push("--headers".into());
        a.extend(headers.iter().cloned());
        let (code, stdout, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        // Distinct names: both drivers produce the same Falco file name.
        let p = t.join(format!("{}-{}", i, v["file_name"].as_str().unwrap()));
        fs::rename(v["path"].as_str().unwrap(), &p).unwrap();
        probes.push(p);
    }
    let image = debian_package(
        &format!("debian-{suite}"),
        arch,
        &format!("linux-image-{}-unsigned", k.release),
    );
    (k.release, image, probes)
}

fn verify(
    probes: &[PathBuf],
    image: &std::path::Path,
    accel: &str,
) -> (i32, serde_json::Value, String) {
    verify_with(probes, image, accel, &[libs_0_20_0(), scap_dkms()], &[])
}

/// `probeforge verify` with the given driver sources for the event tables.
fn verify_with(
    probes: &[PathBuf],
    image: &std::path::Path,
    accel: &str,
    sources: &[PathBuf],
    extra: &[&str],
) -> (i32, serde_json::Value, String) {
    let mut a = vec![
        "verify".to_owned(),
        "--accel".into(),
        accel.into(),
        "--json".into(),
        "--kernel-image".into(),
        image.display().to_string(),
    ];
    for s in sources {
        a.extend(["--driver-source".into(), s.display().to_string()]);
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a.extend(probes.iter().map(|p| p.display().to_string()));
    let (code, out, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    (
        code,
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null),
        err,
    )
}

fn every_program_loads(suite: &str) {
    every_program_loads_on(suite, Arch::X86_64)
}

fn every_program_loads_on(suite: &str, arch: Arch) {
    let t = tmpdir();
    let (release, image, probes) = probes_for_arch(suite, arch, t.path());
    let (code, v, err) = verify(&probes, &image, "auto");
    assert_eq!(code, 0, "{err}\n{v:#}");
    assert_eq!(v["booted_release"], release.as_str());
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), probes.len());
    for r in reports {
        let n = r["programs"].as_u64().unwrap();
        assert!(n >= 100, "{r}");
        assert_eq!(r["loaded"].as_u64().unwrap(), n, "{r}");
        let results = r["results"].as_array().unwrap();
        for tp in ["raw_tracepoint/sys_enter", "raw_tracepoint/sys_exit"] {
            let p = results.iter().find(|p| p["name"] == tp).unwrap();
            assert_eq!(p["attached"], true, "{p}");
        }
        events_prove_the_workload(r);
    }
}

/// The VM captured the loader's workload through the probe and the host decoded it with the
/// driver's own event table: the marker opened, the child forked and exec'd.
fn events_prove_the_workload(r: &serde_json::Value) {
    let ev = &r["events"];
    assert_eq!(ev["ok"], true, "{:#}", ev["expectations"]);
    assert_eq!(ev["errors"].as_array().unwrap().len(), 0, "{ev}");
    assert!(ev["decoded"].as_u64().unwrap() >= 10, "{ev}");
    let proof = ev["proof"].as_array().unwrap();
    assert_eq!(proof.len(), 3, "{proof:#?}");
    let param = |e: &serde_json::Value, n: &str| {
        e["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p[0] == n)
            .map(|p| p[1].clone())
            .unwrap_or_default()
    };
    assert_eq!(proof[0]["name"], "openat", "{}", proof[0]);
    assert_eq!(param(&proof[0], "name"), "/tmp/probeforge-marker");
    assert!(param(&proof[0], "fd").as_i64().unwrap() >= 0);
    // The second event: the loader forked the child that execs next.
    assert!(
        ["clone", "clone3", "fork", "vfork"].contains(&proof[1]["name"].as_str().unwrap_or("")),
        "{}",
        proof[1]
    );
    assert_eq!(
        proof[1]["tid"], proof[0]["tid"],
        "the loader forks: {}",
        proof[1]
    );
    let child = param(&proof[1], "res");
    assert!(child.as_i64().unwrap() > 1, "a child's pid: {}", proof[1]);
    assert_ne!(child, proof[1]["tid"], "{}", proof[1]);
    assert_eq!(proof[2]["name"], "execve");
    assert_eq!(proof[2]["tid"], child, "the exec is the forked child's");
    assert_eq!(param(&proof[2], "exe"), "/init");
    assert_eq!(param(&proof[2], "args"), "probeforge-exec-marker");
}

#[test]
fn real_probes_load_on_debian_5_10() {
    every_program_loads("bullseye");
}

#[test]
fn real_probes_load_on_debian_6_1_and_bad_probes_are_named() {
    let t = tmpdir();
    let (release, image, probes) = probes_for("bookworm", t.path());
    // One instruction of one filler turned into an invalid opcode.
    let bytes = fs::read(&probes[0]).unwrap();
    let (name, off) = {
        let f = object::File::parse(&*bytes).unwrap();
        let s = f
            .sections()
            .find(|s| s.name().unwrap_or("").contains("/filler/") && s.size() > 64)
            .unwrap();
        (
            s.name().unwrap().to_owned(),
            s.file_range().unwrap().0 as usize,
        )
    };
    let mut bad = bytes.clone();
    bad[off + 8] = 0xff; // second instruction's opcode
    let corrupt = t.path().join("corrupt.o");
    fs::write(&corrupt, &bad).unwrap();
    // A probe built for another kernel (its kernel_version says so).
    let (_, files) = debian_kernel("bullseye", Arch::X86_64);
    let (k510, _) = debian_kernel("bullseye", Arch::X86_64);
    let other_out = t.path().join("other");
    let a = build_args(&header_files(&k510, &files), &libs_0_20_0(), &other_out);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let other = fs::read_dir(&other_out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();

    let all = [probes[0].clone(), probes[1].clone(), corrupt, other];
    let (code, v, err) = verify(&all, &image, "tcg");
    assert_eq!(v["accel"], "tcg");
    assert_eq!(code, 1, "{err}");
    assert_eq!(v["booted_release"], release.as_str());
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 4, "{v:#}");
    let by = |p: &str| {
        reports
            .iter()
            .find(|r| r["probe"].as_str().unwrap().contains(p))
            .unwrap_or_else(|| panic!("no report of a probe named *{p}*: {v:#}"))
    };
    for good in ["0-falco", "1-falco"] {
        let r = by(good);
        assert_eq!(r["loaded"], r["programs"], "{r}");
        events_prove_the_workload(r);
    }
    let c = by("corrupt");
    let failed: Vec<_> = c["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ok"] != true)
        .collect();
    assert_eq!(failed.len(), 1, "{c}");
    assert_eq!(failed[0]["name"], name.as_str());
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("unknown opcode"),
        "{}",
        failed[0]
    );
    let o = by(&falco_file(&k510, "o"));
    assert!(
        o["error"]
            .as_str()
            .unwrap()
            .contains("does not match uname -r"),
        "{o}"
    );

    // The libs probe given the 2022 driver's tables: its fillers are not in that driver's
    // filler list, so they cannot be placed where libscap would put them; the verdict fails,
    // naming them, and no capture is attempted on a half-wired probe.
    let (code, v, err) = verify_with(&probes[..1], &image, "auto", &[scap_dkms()], &[]);
    assert_eq!(code, 1, "{err}\n{v:#}");
    let r = &v["reports"][0];
    assert_eq!(r["loaded"], r["programs"], "{r}");
    let map_errors = r["map_errors"].as_array().unwrap();
    assert!(
        map_errors.iter().any(|e| e
            .as_str()
            .unwrap()
            .contains("is not in the driver's filler list")),
        "{r}"
    );
    assert_eq!(r["events"]["ok"], false, "{r}");
    assert!(r["capture"]["capture_error"]
        .as_str()
        .unwrap()
        .contains("not attempted"));

    // Lockdown is the user's to set, and it changes what the verifier accepts: under
    // `confidentiality` the fillers' kernel reads are refused, each named with the verifier's
    // own words.
    let (code, v, err) = verify_with(
        &probes[..1],
        &image,
        "auto",
        &[libs_0_20_0()],
        &["--lockdown", "confidentiality"],
    );
    assert_eq!(code, 1, "{err}\n{v:#}");
    let r = &v["reports"][0];
    let refused: Vec<&serde_json::Value> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ok"] != true)
        .collect();
    assert!(refused.len() > 100, "{r}");
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .contains("unknown func bpf_probe_read_kernel"),
        "{}",
        refused[0]
    );
}

/// Debian's arm64 kernel under qemu-system-aarch64 (TCG, `virt` machine) with the loader built
/// for aarch64 from `init/` (`.ci/setup` builds it); the probes are cross-built on this host.
#[test]
fn real_probes_load_on_debian_6_1_arm64() {
    every_program_loads_on("bookworm", Arch::Aarch64);
}

#[test]
fn real_probes_load_on_debian_6_12() {
    every_program_loads("trixie");
}

#[test]
fn build_and_build_all_verify_before_publishing() {
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    let src = libs_0_20_0();
    // One kernel from its target: the image comes from the same repository.
    let (code, _, err) = run(&[
        "build",
        "--target",
        "debian-bookworm",
        "--kernel",
        &k.release,
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "8.0.0+driver",
        "-o",
        t.path().join("one").to_str().unwrap(),
        "--verify",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("ok   ")
            && err.contains("184/184 programs loaded")
            && err.contains("workload events decoded")
            && err.contains(&format!("(in {} under", k.release)),
        "{err}"
    );
    // `verify` finds the kernel image itself from the probe's name (no --kernel-image, no
    // --target: every catalog target with its target id); --no-events and --cmdline too.
    let probe = t.path().join("one").join(falco_file(&k, "o"));
    let (code, out, err) = run(&[
        "verify",
        probe.to_str().unwrap(),
        "--no-events",
        "--cmdline",
        "quiet",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        err.contains(&format!(
            "kernel image for {} from debian-bookworm",
            k.release
        )),
        "{err}"
    );
    assert!(
        format!("{out}{err}").contains("184/184 programs loaded")
            && !format!("{out}{err}").contains("workload events decoded"),
        "{out} {err}"
    );
    let repo = t.path().join("repo");
    let only = format!("^{}$", regex::escape(&k.release));
    let (code, out, err) = run(&[
        "build-all",
        "debian-bookworm",
        "--arch",
        "x86_64",
        "--only",
        &only,
        "--repo",
        repo.to_str().unwrap(),
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "8.0.0+driver",
        "--verify",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(
        v["built"].as_u64().unwrap() + v["cached"].as_u64().unwrap(),
        1,
        "{v}"
    );
    // The VM's verdict travels with the published kernel.
    let verdict = v["kernels"][0]["verified"].as_str().unwrap_or_default();
    assert!(
        verdict.starts_with("ok") && verdict.contains("workload events decoded"),
        "{v}"
    );
}

/// One probe verified whole in its kernel: loaded, attached, the workload's events decoded;
/// the verdict came over the channel of the guest's arch, not the console.
fn verifies(probe: &std::path::Path, image: &std::path::Path, release: &str, arch: Arch) -> f64 {
    let (code, v, err) = verify_with(&[probe.to_owned()], image, "auto", &[libs_0_20_0()], &[]);
    assert_eq!(code, 0, "{err}\n{v:#}");
    assert_eq!(v["booted_release"], release, "{v:#}");
    let channel = if arch == Arch::X86_64 {
        "debugcon"
    } else {
        "semihosting"
    };
    assert_eq!(v["channel"], channel, "{v:#}");
    let r = &v["reports"][0];
    assert_eq!(r["loaded"], r["programs"], "{r}");
    assert!(r["programs"].as_u64().unwrap() >= 100, "{r}");
    events_prove_the_workload(r);
    v["seconds"].as_f64().unwrap()
}

/// Debian 7.x: `linux-image-R` is a 2 kB meta-package; the kernel is in `linux-binary-R`
/// (`usr/lib/modules/R/vmlinuz`). Given the meta-package alone, verify finds the kernel's
/// package in the catalog's APT targets; given a `linux-binary-*`, it boots that. Offline with
/// an empty cache, the error names the meta-package and the dependency.
#[test]
fn debian_7x_probe_verifies_from_its_meta_package_or_its_linux_binary() {
    let (k, files) = debian_7x_kernel(Arch::X86_64);
    let t = tmpdir();
    let probe = libs_probe(&k, &files, t.path());
    let meta = debian_package(
        "debian-trixie",
        Arch::X86_64,
        &format!("linux-image-{}", k.release),
    );
    assert!(
        fs::metadata(&meta).unwrap().len() < 64 * 1024,
        "linux-image-{} is no longer a meta-package",
        k.release
    );
    let empty = t.path().join("empty-cache");
    let (code, _, err) = run(&[
        "--offline",
        "--cache-dir",
        empty.to_str().unwrap(),
        "verify",
        "--no-events",
        "--kernel-image",
        meta.to_str().unwrap(),
        probe.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("`linux-image-{}`, a meta-package", k.release))
            && err.contains(&format!("dependency `linux-binary-{}", k.release))
            && err.contains("offline"),
        "{err}"
    );
    verifies(&probe, &meta, &k.release, Arch::X86_64);
    let binary = debian_package(
        "debian-trixie",
        Arch::X86_64,
        &format!("linux-binary-unsigned-{}", k.release),
    );
    verifies(&probe, &binary, &k.release, Arch::X86_64);
}

/// Debian's 16 KiB-page arm64 kernel: a Cortex-A57 has no 16 KiB granule and the kernel never
/// starts; the guest CPU must implement every granule.
#[test]
fn debian_arm64_16k_probe_verifies() {
    let (k, files) = debian_flavour_kernel("trixie", "6.12.", "arm64-16k", Arch::Aarch64);
    let t = tmpdir();
    let probe = libs_probe(&k, &files, t.path());
    let image = debian_package(
        "debian-trixie",
        Arch::Aarch64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    verifies(&probe, &image, &k.release, Arch::Aarch64);
}

/// PREEMPT_RT under TCG disables the 8250's threaded interrupt and cuts long console output
/// off: the verdict must not ride the console.
fn rt_probe_verifies(suite: &str, series: &str) {
    let (k, files) = debian_flavour_kernel(suite, series, "rt-amd64", Arch::X86_64);
    let t = tmpdir();
    let probe = libs_probe(&k, &files, t.path());
    let image = debian_package(
        &format!("debian-{suite}"),
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    verifies(&probe, &image, &k.release, Arch::X86_64);
}

/// The RT regression on one kernel line in CI (6.12); `cargo bench --bench verify` boots every
/// flavour of every line, 6.1 rt-amd64 included.
#[test]
fn debian_6_12_rt_amd64_probe_verifies() {
    rt_probe_verifies("trixie", "6.12.");
}

/// A guest that prints nothing (here an arm64 `Image` whose first instruction branches to
/// itself) is booted once more, then reported as a kernel that did not start, not as a probe
/// without a verdict.
#[test]
fn a_kernel_that_never_starts_is_named_as_such() {
    let t = tmpdir();
    let mut image = vec![0u8; 64 * 1024];
    image[0..4].copy_from_slice(&0x1400_0000u32.to_le_bytes()); // b .
    let size = image.len() as u64;
    image[16..24].copy_from_slice(&size.to_le_bytes()); // image_size
    image[24..32].copy_from_slice(&2u64.to_le_bytes()); // 4 KiB pages, little-endian
    image[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let path = t.path().join("silent-Image");
    fs::write(&path, &image).unwrap();
    let probe = t.path().join("p.o");
    fs::write(&probe, b"not reached").unwrap();
    let start = std::time::Instant::now();
    let (code, _, err) = run(&[
        "verify",
        "--no-events",
        "--timeout",
        "6",
        "--kernel-image",
        path.to_str().unwrap(),
        probe.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("the kernel did not start") && err.contains("2 boot(s)"),
        "{err}"
    );
    assert!(!err.contains("gave no verdict"), "{err}");
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
}

/// The RPM distributions' layouts, in packages rpmbuild makes around a real Debian kernel:
/// `kernel-core` holds `/lib/modules/R/vmlinuz` and comes out byte for byte; the `kernel`
/// meta-package holds none and is named with what it requires. No boot.
#[test]
fn rpm_kernel_core_yields_its_vmlinuz_and_the_kernel_meta_package_is_named() {
    let (k, _) = debian_kernel("bookworm", Arch::X86_64);
    let deb = debian_package(
        "debian-bookworm",
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    let vmlinuz = probeforge::verify::kernel_image(&deb).unwrap();
    let t = tmpdir();
    let src = t.path().join("vmlinuz");
    fs::write(&src, &vmlinuz).unwrap();
    let rel = "6.1.0-1.el9.x86_64";
    let spec = t.path().join("kernel.spec");
    fs::write(
        &spec,
        format!(
            r#"
Name: kernel
Version: 6.1.0
Release: 1.el9
Summary: a Debian kernel in RHEL's kernel-core layout (probeforge tests)
License: GPL-2.0
%global debug_package %{{nil}}
%define __os_install_post %{{nil}}
%define _build_id_links none
%define _binary_payload w1.gzdio
Requires: kernel-core-uname-r = {rel}
%description
meta
%package core
Summary: the kernel
Provides: kernel-core-uname-r = {rel}
%description core
core
%install
mkdir -p %{{buildroot}}/lib/modules/{rel}
cp {src} %{{buildroot}}/lib/modules/{rel}/vmlinuz
echo config > %{{buildroot}}/lib/modules/{rel}/config
%files
%files core
/lib/modules/{rel}
"#,
            src = src.display()
        ),
    )
    .unwrap();
    let top = t.path().join("rpmbuild");
    let out = std::process::Command::new("rpmbuild")
        .arg("-bb")
        .arg(&spec)
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--target")
        .arg("x86_64")
        .env("HOME", t.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rpms: Vec<PathBuf> = walkdir::WalkDir::new(top.join("RPMS"))
        .into_iter()
        .flatten()
        .map(|e| e.path().to_owned())
        .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
        .collect();
    let core = rpms
        .iter()
        .find(|p| p.to_string_lossy().contains("kernel-core-"))
        .unwrap();
    let meta = rpms
        .iter()
        .find(|p| !p.to_string_lossy().contains("kernel-core-"))
        .unwrap();
    assert!(probeforge::verify::kernel_image(core).unwrap() == vmlinuz);
    let err = probeforge::verify::kernel_image(meta)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`kernel`, a meta-package without a kernel")
            && err.contains("`kernel-core-uname-r`"),
        "{err}"
    );
}
