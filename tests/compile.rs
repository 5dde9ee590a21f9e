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
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["checks"],
        serde_json::json!([{"name": "elf-header", "ok": false, "detail": "not an ELF64 little-endian object"}]),
        "{out}"
    );

    // One thing changed in the real probe: a section renamed in the string table. Each is
    // refused by its own check, and by no other.
    let args = [
        "--kernel-release",
        &k.release,
        "--driver-version",
        "8.0.0+driver",
    ];
    for (from, to, want) in [
        (
            "raw_tracepoint/sys_enter",
            "raw_tracepoint/sys_entex",
            (
                "program-present",
                "program `raw_tracepoint/sys_enter` missing",
            ),
        ),
        (
            "kernel_version",
            "kernel_versioX",
            ("kernel-version", "no kernel_version section"),
        ),
        (
            "license",
            "licensX",
            (
                "license",
                "license section: None (the kernel needs a GPL-compatible one)",
            ),
        ),
    ] {
        let renamed = t.path().join(format!("{to}.o").replace('/', "_"));
        fs::write(&renamed, rename_section(&bytes, from, to)).unwrap();
        let mut a = vec!["validate", renamed.to_str().unwrap()];
        a.extend(args);
        let (code, out, _) = run(&a);
        assert_eq!(code, 1, "{from}: {out}");
        assert_eq!(
            fail_lines(&out),
            [fail_line(want.0, want.1)],
            "{from}: {out}"
        );
    }
}

/// The `FAIL` lines of `validate`'s text output.
fn fail_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("FAIL ")).collect()
}

/// `validate`'s line for a failed check.
fn fail_line(name: &str, detail: &str) -> String {
    format!("FAIL {name:<22} {detail}")
}

/// The probe with section `from` named `to` (same length), changed in the string table the
/// section names are read from; nothing else moves.
fn rename_section(probe: &[u8], from: &str, to: &str) -> Vec<u8> {
    use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
    use object::LittleEndian as LE;
    assert_eq!(from.len(), to.len());
    let f = ElfFile64::<LE>::parse(probe).unwrap();
    let eh = f.elf_header();
    let sections = eh.sections(LE, probe).unwrap();
    let strtab = sections
        .section(object::SectionIndex(eh.e_shstrndx(LE) as usize))
        .unwrap();
    let (off, size) = strtab.file_range(LE).unwrap();
    let (off, size) = (off as usize, size as usize);
    let (needle, with) = (format!("{from}\0"), format!("{to}\0"));
    let mut out = probe.to_vec();
    let table = &mut out[off..off + size];
    let hits: Vec<usize> = (0..table.len())
        .filter(|&i| table[i..].starts_with(needle.as_bytes()))
        .collect();
    assert!(!hits.is_empty(), "no `{from}` in the section names");
    for i in hits {
        table[i..i + with.len()].copy_from_slice(with.as_bytes());
    }
    let renamed = ElfFile64::<LE>::parse(&out[..]).unwrap();
    use object::Object;
    assert!(renamed.section_by_name(from).is_none());
    assert!(renamed.section_by_name(to).is_some());
    out
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

/// The compile cache is keyed by what the compiler sees, through the same calls `build-all`
/// makes (`prepare`, `cache_key`, the cache's path for that key): the same inputs staged again
/// hit; one more clang flag, with everything else equal, misses; so do a driver tree with
/// one line patched and a header package with one header changed, whose command lines are
/// the same.
#[test]
fn compile_cache_hits_the_same_inputs_and_misses_one_changed_flag_driver_or_header() {
    use probeforge::pipeline::{prepare, Request};
    let (k, files) = debian_kernel("bookworm", Arch::X86_64);
    let tc = probeforge::toolchain::Toolchain::find(None, None).expect("clang and llc");
    let patches = probeforge::patch::Catalog::embedded();
    let t = tmpdir();
    let unpack = |name: &str| {
        let dir = t.path().join(name);
        probeforge::extract::unpack_all(
            &[libs_0_20_0()],
            &dir,
            probeforge::extract::Selection::Driver,
            Default::default(),
        )
        .unwrap();
        dir
    };
    let (driver, patched) = (unpack("driver"), unpack("patched"));
    let probe_c = fs::read_dir(&patched)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("driver/bpf/probe.c");
    let text = fs::read_to_string(&probe_c).unwrap();
    fs::write(&probe_c, format!("{text}\n/* one line more */\n")).unwrap();
    let req = Request {
        headers: header_files(&k, &files),
        kernel_release: Some(k.release.clone()),
        driver_source: driver,
        driver_version: Some("8.0.0+driver".into()),
        target_id: Some("debian".into()),
        kernel_version: Some("1".into()),
        arch: Some(Arch::X86_64),
        out_dir: t.path().join("out"),
        scratch: Some(t.path().to_owned()),
        driver_digest: None,
        header_digests: Vec::new(),
        file_release: None,
    };
    let cache_dir = t.path().join("cache");
    let cache = probeforge::base::Cache(&cache_dir);
    let first = prepare(&req, &tc, &patches).unwrap();
    let key = first.cache_key(&tc);
    // What a compile would leave there; the lookup, not the bytes, is under test.
    let entry = cache.probe(&key);
    fs::create_dir_all(entry.parent().unwrap()).unwrap();
    fs::write(&entry, b"cached probe").unwrap();

    let again = prepare(&req, &tc, &patches).unwrap();
    assert_eq!(again.clang_args, first.clang_args);
    assert!(
        cache.probe(&again.cache_key(&tc)).is_file(),
        "the same inputs staged again missed the cache"
    );

    let mut flagged = tc.clone();
    flagged
        .clang_prefix_args
        .push("-DPROBEFORGE_ONE_MORE_FLAG".into());
    let other = prepare(&req, &flagged, &patches).unwrap();
    assert_eq!(flagged.identity(), tc.identity());
    // The flag goes after the toolchain's own leading arguments; all else is as it was.
    let n = tc.clang_prefix_args.len();
    let mut expected = first.clang_args.clone();
    expected.insert(n, "-DPROBEFORGE_ONE_MORE_FLAG".into());
    assert_eq!(other.clang_args, expected, "only the one flag differs");
    assert!(
        !cache.probe(&other.cache_key(&flagged)).exists(),
        "a clang command line with one more flag hit the cache"
    );

    let patched_req = Request {
        driver_source: patched,
        ..req.clone()
    };
    let p = prepare(&patched_req, &tc, &patches).unwrap();
    assert_eq!(p.clang_args, first.clang_args);
    assert_eq!(p.llc_args, first.llc_args);
    assert!(
        !cache.probe(&p.cache_key(&tc)).exists(),
        "a patched driver tree hit the cache"
    );

    // The same kernel's `-common` package rebuilt by dpkg-deb with one line added to the
    // header every compile includes first: same release, same paths, same command lines.
    let common = k
        .packages
        .iter()
        .zip(&files)
        .find(|(p, _)| p.name.starts_with("linux-headers-") && p.name.ends_with("-common"))
        .map(|(_, f)| f.clone())
        .expect("a -common package");
    let raw = t.path().join("common-raw");
    let ok = |c: &mut std::process::Command| {
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(std::process::Command::new("dpkg-deb")
        .arg("-R")
        .arg(&common)
        .arg(&raw));
    let kconfig = fs::read_dir(raw.join("usr/src"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("include/linux/kconfig.h"))
        .find(|p| p.is_file())
        .expect("include/linux/kconfig.h in -common");
    let text = fs::read_to_string(&kconfig).unwrap();
    fs::write(&kconfig, format!("{text}/* one line more */\n")).unwrap();
    let rebuilt = t.path().join("rebuilt").join(common.file_name().unwrap());
    fs::create_dir_all(rebuilt.parent().unwrap()).unwrap();
    ok(std::process::Command::new("dpkg-deb")
        .args(["-Znone", "-b"])
        .arg(&raw)
        .arg(&rebuilt));
    let headers_req = Request {
        headers: req
            .headers
            .iter()
            .map(|h| {
                if *h == common {
                    rebuilt.clone()
                } else {
                    h.clone()
                }
            })
            .collect(),
        ..req.clone()
    };
    let h = prepare(&headers_req, &tc, &patches).unwrap();
    assert_eq!(h.clang_args, first.clang_args);
    assert!(
        !cache.probe(&h.cache_key(&tc)).exists(),
        "a header package with one header changed hit the cache"
    );
}
