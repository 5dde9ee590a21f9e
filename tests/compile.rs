//! The native build against kbuild itself: the same probe, byte for byte, for real Falco
//! sources on real Debian kernels; reproducibility; validation of good and bad probes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use probeforge::kernel::Arch;

/// Builds the probe the way falco-driver-loader does: `make -C <objtree> M=<driver>/bpf`, on
/// headers unpacked by dpkg-deb with the objtree Makefile's absolute include patched (as
/// driverkit does), the driver staged as its own install stages it and patched by patch(1)
/// (`common::kbuild`, no probeforge code). Returns the staged tree and the probe's sha256.
fn kbuild_reference(
    debs: &[PathBuf],
    kbuild_deb: &Path,
    driver: &Path,
    version: Option<&str>,
    arch: Arch,
    t: &Path,
) -> (KbuildTree, String) {
    let all: Vec<PathBuf> = debs
        .iter()
        .cloned()
        .chain([kbuild_deb.to_owned()])
        .collect();
    // The scripts/ link points at the host's kbuild (same version, host architecture).
    let tree = kbuild_setup(&all, driver, version, t);
    let probe = tree.make(arch);
    let sha = sha256_file(&probe);
    (tree, sha)
}

/// The host-architecture `linux-kbuild-*` of a kernel of `target` (the 7.x kernels are listed in
/// debian-trixie, from its backports).
fn kbuild_deb(suite: &str, arch: Arch, release: &str) -> PathBuf {
    let name = kbuild_name(suite, arch, release);
    debian_package(&format!("debian-{suite}"), Arch::host().unwrap(), &name)
}

/// Compares two objects section by section, leaving out DWARF and BTF (which carry source paths):
/// (sections equal, names of sections that differ or exist on one side only).
fn same_sections(a: &Path, b: &Path) -> (usize, Vec<String>) {
    use object::{Object, ObjectSection};
    let (da, db) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    let sections = |d: &[u8]| -> std::collections::BTreeMap<String, Vec<u8>> {
        let f = object::File::parse(d).unwrap();
        f.sections()
            .filter_map(|s| {
                let n = s.name().ok()?.to_owned();
                let skip = [".debug", ".rel.debug", ".BTF", ".rel.BTF"]
                    .iter()
                    .any(|p| n.starts_with(p));
                (!skip).then(|| (n, s.data().unwrap().to_vec()))
            })
            .collect()
    };
    let (sa, sb) = (sections(&da), sections(&db));
    let mut differ = Vec::new();
    let mut same = 0;
    for (n, d) in &sa {
        match sb.get(n) {
            Some(e) if e == d => same += 1,
            _ => differ.push(n.clone()),
        }
    }
    differ.extend(sb.keys().filter(|n| !sa.contains_key(*n)).cloned());
    (same, differ)
}

fn patches_of(v: &serde_json::Value) -> Vec<String> {
    v["patches"]
        .as_array()
        .expect("patches in the build's JSON")
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// Every check of the build's report passed, and there were checks.
fn all_checks_ok(v: &serde_json::Value) {
    let checks = v["report"]["checks"].as_array().expect("report.checks");
    assert!(checks.len() >= 5, "too few checks: {checks:?}");
    let failed: Vec<_> = checks.iter().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}

fn native(
    headers: &[PathBuf],
    driver: &Path,
    version: Option<&str>,
    out: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let mut args: Vec<String> = vec![
        "build".into(),
        "--json".into(),
        "-o".into(),
        out.display().to_string(),
        "--driver-source".into(),
        driver.display().to_string(),
    ];
    if let Some(v) = version {
        args.extend(["--driver-version".into(), v.into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--headers".into());
    args.extend(headers.iter().map(|p| p.display().to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = run(&a);
    assert_eq!(code, 0, "native build failed:\n{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn same_as_kbuild(suite: &str, arch: Arch, dkms: bool) {
    let (k, files) = debian_kernel(suite, arch);
    let headers = header_files(&k, &files);
    // kbuild's host tools: the host-architecture linux-kbuild of the same series.
    let kbuild_deb = kbuild_deb(suite, arch, &k.release);
    let (driver, version) = if dkms {
        (scap_dkms(), None)
    } else {
        (libs_0_20_0(), Some("8.0.0+driver"))
    };
    let t = tmpdir();
    let (tree, reference) =
        kbuild_reference(&headers, &kbuild_deb, &driver, version, arch, t.path());
    let out = t.path().join("out");
    let v = native(&headers, &driver, version, &out, &[]);
    assert_eq!(
        v["sha256"],
        reference.as_str(),
        "{} {}: native differs from kbuild",
        k.release,
        tree.driver_version
    );
    assert_eq!(
        sha256_file(Path::new(v["path"].as_str().unwrap())),
        reference
    );
    // The same patches, chosen from index.json by the test itself.
    assert_eq!(patches_of(&v), tree.patches, "{}", k.release);
    // Nothing else in the output directory.
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [format!("falco_debian_{}_1.o", k.release)]);
    all_checks_ok(&v);
}

#[test]
fn libs_0_20_0_bullseye_amd64_same_as_kbuild() {
    same_as_kbuild("bullseye", Arch::X86_64, false);
}
#[test]
fn libs_0_20_0_bookworm_amd64_same_as_kbuild() {
    same_as_kbuild("bookworm", Arch::X86_64, false);
}
#[test]
fn libs_0_20_0_trixie_amd64_same_as_kbuild() {
    same_as_kbuild("trixie", Arch::X86_64, false);
}
#[test]
fn libs_0_20_0_bookworm_arm64_cross_same_as_kbuild() {
    same_as_kbuild("bookworm", Arch::Aarch64, false);
}
#[test]
fn dkms_2022_bullseye_amd64_same_as_kbuild() {
    same_as_kbuild("bullseye", Arch::X86_64, true);
}
#[test]
fn dkms_2022_bookworm_amd64_same_as_kbuild() {
    same_as_kbuild("bookworm", Arch::X86_64, true);
}
#[test]
fn dkms_2022_trixie_amd64_patched_same_as_kbuild() {
    // 6.12 needs the rss_stat patch; kbuild gets the same tree patched by patch(1).
    same_as_kbuild("trixie", Arch::X86_64, true);
}

/// 7.x kernels: the driver needs the kernfs patch (and the 2022 driver the rss_stat one too), and
/// the headers need the kernel's C dialect. The same probe as kbuild's on the same tree patched
/// by patch(1).
fn build_7x(arch: Arch, dkms: bool) {
    let (k, files) = debian_7x_kernel(arch);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    let (driver, version) = if dkms {
        (scap_dkms(), None)
    } else {
        (libs_0_20_0(), Some("8.0.0+driver"))
    };
    let kbuild_deb = kbuild_deb("trixie", arch, &k.release);
    let (tree, _) = kbuild_reference(
        &headers,
        &kbuild_deb,
        &driver,
        version,
        arch,
        &t.path().join("kbuild"),
    );
    let mut want = vec!["kernfs-node-parent-rename.patch"];
    if dkms {
        want.push("rss-stat-array.patch");
    }
    want.sort();
    let mut got = tree.patches.clone();
    got.sort();
    assert_eq!(got, want, "the test's own selection from index.json");
    let out = t.path().join("out");
    let v = native(&headers, &driver, version, &out, &[]);
    assert_eq!(v["kernel"]["release"], k.release.as_str());
    assert_eq!(patches_of(&v), tree.patches);
    let args: Vec<&str> = v["clang_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"-fms-extensions"),
        "flags derived from the 7.x tree: {args:?}"
    );
    let probe = v["path"].as_str().unwrap();
    // From 6.13 kbuild compiles an external module from the module's directory (`probe.c`
    // relative, DW_AT_comp_dir the driver's bpf/), where probeforge compiles as older kbuild did
    // (from the objtree, the source by its mapped absolute path): debug info and BTF line
    // strings differ by those paths only. Every other section must be byte-identical.
    assert!(tree.kernel >= (6, 13, 0));
    let (same, differ) = same_sections(&tree.bpf_dir.join("probe.o"), Path::new(probe));
    assert!(
        differ.is_empty() && same > 100,
        "{} {}: native differs from kbuild on the same patched tree in {differ:?} ({same} sections equal)",
        k.release,
        tree.driver_version
    );
    all_checks_ok(&v);
    // And it validates as a probe for that kernel, through the CLI too.
    let (code, out, err) = run(&[
        "validate",
        probe,
        "--kernel-release",
        &k.release,
        "--arch",
        arch.uname_m(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn libs_0_20_0_builds_for_7x_amd64() {
    build_7x(Arch::X86_64, false);
}
#[test]
fn libs_0_20_0_builds_for_7x_arm64() {
    build_7x(Arch::Aarch64, false);
}
#[test]
fn dkms_2022_builds_for_7x_amd64_with_patches() {
    build_7x(Arch::X86_64, true);
}

#[test]
fn same_bytes_from_other_directories_and_times() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let headers = header_files(&k, &files);
    let driver = libs_0_20_0();
    let (a, b) = (tmpdir(), tmpdir());
    // Copy the inputs elsewhere too: where inputs live must not matter either.
    let moved: Vec<PathBuf> = headers
        .iter()
        .map(|h| {
            let d = b.path().join("in").join(h.file_name().unwrap());
            fs::create_dir_all(d.parent().unwrap()).unwrap();
            fs::copy(h, &d).unwrap();
            d
        })
        .collect();
    let scratch_b = b.path().join("deep/scratch/dir");
    fs::create_dir_all(&scratch_b).unwrap();
    let v1 = native(
        &headers,
        &driver,
        Some("8.0.0+driver"),
        &a.path().join("o"),
        &[],
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let v2 = native(
        &moved,
        &driver,
        Some("8.0.0+driver"),
        &b.path().join("o"),
        &["--scratch", scratch_b.to_str().unwrap()],
    );
    // The files themselves, not the digests the tool prints about them.
    let file = |v: &serde_json::Value| fs::read(v["path"].as_str().unwrap()).unwrap();
    let (f1, f2) = (file(&v1), file(&v2));
    assert!(
        f1 == f2,
        "the probe's bytes differ between directories and times"
    );
    assert_eq!(
        v1["sha256"],
        sha256_file(Path::new(v1["path"].as_str().unwrap()))
    );
    assert_eq!(v1["flags_sha256"], v2["flags_sha256"]);
}

/// The names of the failed checks in `validate`'s text output.
fn fails(out: &str) -> Vec<&str> {
    out.lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect()
}

#[test]
fn validation_rejects_other_kernels_and_corruption() {
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let t = tmpdir();
    let v = native(
        &header_files(&k, &files),
        &libs_0_20_0(),
        Some("8.0.0+driver"),
        t.path(),
        &[],
    );
    let probe = PathBuf::from(v["path"].as_str().unwrap());
    let (code, out, _) = run(&[
        "validate",
        probe.to_str().unwrap(),
        "--kernel-release",
        &k.release,
        "--driver-version",
        "8.0.0+driver",
        "--arch",
        "x86_64",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&[
        "validate",
        probe.to_str().unwrap(),
        "--kernel-release",
        "6.12.0-1-amd64",
    ]);
    assert_eq!(code, 1);
    assert_eq!(fails(&out), ["kernel-version"], "{out}");
    let (code, out, _) = run(&[
        "validate",
        probe.to_str().unwrap(),
        "--driver-version",
        "9.1.0+driver",
    ]);
    assert_eq!(code, 1);
    assert_eq!(fails(&out), ["probe-version"], "{out}");
    let (code, out, _) = run(&["validate", probe.to_str().unwrap(), "--arch", "aarch64"]);
    assert_eq!(code, 1, "{out}");
    // The one failure: an x86_64 probe carries the page_fault programs.
    assert_eq!(fails(&out), ["arch-programs"], "{out}");
    assert!(
        out.contains("aarch64 probes have no page_fault programs"),
        "{out}"
    );
    // Corruptions: wrong machine, truncated, not an ELF.
    let bytes = fs::read(&probe).unwrap();
    let mut m = bytes.clone();
    m[18] = 62; // EM_X86_64
    let bad = t.path().join("machine.o");
    fs::write(&bad, &m).unwrap();
    let (code, out, _) = run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(fails(&out), ["elf-machine"], "{out}");
    assert!(out.contains("e_machine 62 (want EM_BPF, 247)"), "{out}");
    let cut = t.path().join("cut.o");
    fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let (code, out, _) = run(&["validate", cut.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    // A header that is still ELF, section headers cut off: refused at parsing, saying why.
    assert_eq!(fails(&out), ["elf-parse"], "{out}");
    assert!(out.contains("ok   elf-header"), "{out}");
    assert!(out.contains("Invalid ELF section header"), "{out}");
    let junk = t.path().join("junk.o");
    fs::write(&junk, b"not an object").unwrap();
    let (code, out, _) = run(&["validate", junk.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1);
    assert!(out.contains("elf-header"), "{out}");
}

#[test]
fn a_driver_without_the_legacy_probe_is_refused_with_the_reason() {
    // The layout of 10.0.0+driver and later: driver/ without bpf/.
    let t = tmpdir();
    let src = t.path().join("src");
    probeforge::extract::unpack_all(
        &[libs_0_20_0()],
        &src,
        probeforge::extract::Selection::Driver,
        Default::default(),
    )
    .unwrap();
    let driver = fs::read_dir(&src)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("driver");
    fs::remove_dir_all(driver.join("bpf")).unwrap();
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let h: Vec<String> = header_files(&k, &files)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec![
        "build",
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "10.0.0+driver",
        "-o",
        t.path().to_str().unwrap(),
        "--headers",
    ];
    args.extend(h.iter().map(String::as_str));
    let (code, _, err) = run(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("no legacy eBPF probe") && err.contains("9.1.0+driver"),
        "{err}"
    );
}

#[test]
fn a_driver_that_does_not_compile_names_kernel_command_and_error() {
    let t = tmpdir();
    let src = t.path().join("src");
    probeforge::extract::unpack_all(
        &[libs_0_20_0()],
        &src,
        probeforge::extract::Selection::Driver,
        Default::default(),
    )
    .unwrap();
    let probe_c = fs::read_dir(&src)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("driver/bpf/probe.c");
    let text = fs::read_to_string(&probe_c).unwrap();
    fs::write(
        &probe_c,
        format!("{text}\nint broken = undeclared_symbol_for_test;\n"),
    )
    .unwrap();
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let h: Vec<String> = header_files(&k, &files)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let out = t.path().join("out");
    let mut args = vec![
        "build",
        "--driver-source",
        src.to_str().unwrap(),
        "--driver-version",
        "8.0.0+driver",
        "-o",
        out.to_str().unwrap(),
        "--headers",
    ];
    args.extend(h.iter().map(String::as_str));
    let (code, _, err) = run(&args);
    assert_eq!(code, 1);
    for needle in [
        format!("kernel `{}`", k.release).as_str(),
        "clang failed (exit status 1)",
        "command:",
        "-D__BPF_TRACING__",
        "undeclared_symbol_for_test",
    ] {
        assert!(err.contains(needle), "`{needle}` missing from:\n{err}");
    }
    assert!(
        !out.exists() || fs::read_dir(&out).unwrap().next().is_none(),
        "nothing may be written"
    );
}

#[test]
fn a_mismatched_or_missing_toolchain_is_an_environment_error() {
    let (code, _, err) = run(&[
        "build",
        "--clang",
        "/nonexistent/clang",
        "--headers",
        "x.deb",
        "--driver-source",
        "y",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no clang found"), "{err}");
    let (code, _, err) = run(&[
        "build",
        "--require-llvm",
        "99",
        "--headers",
        "x.deb",
        "--driver-source",
        "y",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pinned to LLVM 99"), "{err}");
}
