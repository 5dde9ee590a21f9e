//! The native build against kbuild itself: the same probe, byte for byte, for real Falco
//! sources on real Debian kernels; reproducibility; validation of good and bad probes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::matrix::*;
use common::*;
use probeforge::kernel::Arch;

// A slice of the matrix (`common::matrix`): each driver layout, each kernel line (5.10, 6.1,
// 6.12, 7.x) and both arches once. Every cell is `cargo bench --bench compile_matrix`.
#[test]
fn libs_0_20_0_bullseye_amd64_same_as_kbuild() {
    same_as_kbuild("bullseye", Arch::X86_64, false);
}
#[test]
fn libs_0_20_0_bookworm_arm64_cross_same_as_kbuild() {
    same_as_kbuild("bookworm", Arch::Aarch64, false);
}
#[test]
fn dkms_2022_trixie_amd64_patched_same_as_kbuild() {
    // 6.12 needs the rss_stat patch; kbuild gets the same tree patched by patch(1).
    same_as_kbuild("trixie", Arch::X86_64, true);
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
