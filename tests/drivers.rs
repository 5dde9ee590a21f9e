//! Every Falco driver release with a legacy probe, built as its own install lays it out: the
//! falcosecurity/libs archives in `../shared/drivers` (3.0.1, 4.0.0, 6.0.1, 7.0.0), Debian's
//! `falcosecurity-libs` orig tarball (8.0.0+driver) and its `falcosecurity-scap-dkms` packages
//! (the 2022 driver, 0.23.2 = 9.1.0+driver), on real Debian kernels. Each probe costs ~12 s of
//! CPU, so this is a slice (every layout once, every kernel line, both arches); the whole matrix
//! is `cargo bench --bench drivers`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use probeforge::kernel::Arch;

/// A falcosecurity/libs GitHub archive from `../shared/drivers`, checked against its SHA256SUMS.
fn shared_driver(version: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/drivers");
    let name = format!("libs-{version}.tar.gz");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap_or_else(|e| {
        panic!(
            "`{}`: the driver archives these tests build are missing ({e})",
            dir.join("SHA256SUMS").display()
        )
    });
    let want = sums
        .lines()
        .find_map(|l| l.strip_suffix(&name).map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| panic!("`{name}` is not listed in `{}/SHA256SUMS`", dir.display()));
    let p = dir.join(&name);
    assert!(p.is_file(), "`{}` is missing", p.display());
    assert_eq!(
        sha256_file(&p),
        want,
        "`{}` differs from SHA256SUMS",
        p.display()
    );
    p
}

/// `probeforge build --json` of one driver source for header files; (exit code, JSON or stderr).
fn build(
    headers: &[PathBuf],
    driver: &Path,
    version: Option<&str>,
    out: &Path,
) -> (i32, serde_json::Value, String) {
    let mut a: Vec<String> = vec![
        "build".into(),
        "--json".into(),
        "--driver-source".into(),
        driver.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if let Some(v) = version {
        a.extend(["--driver-version".into(), v.into()]);
    }
    a.push("--headers".into());
    a.extend(headers.iter().map(|h| h.display().to_string()));
    let (code, stdout, stderr) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, v, stderr)
}

/// The probe passes `probeforge validate` for its kernel, driver version and arch.
fn validated(v: &serde_json::Value, release: &str, driver: &str, arch: Arch) {
    let path = v["path"].as_str().expect("a probe path");
    let (code, stdout, stderr) = run(&[
        "validate",
        path,
        "--kernel-release",
        release,
        "--driver-version",
        driver,
        "--arch",
        arch.uname_m(),
    ]);
    assert_eq!(code, 0, "validate {path}:\n{stdout}{stderr}");
}

#[test]
fn libs_archives_up_to_7_0_0_build_with_headers_one_level_up() {
    let (k, files) = debian_kernel("bullseye", Arch::X86_64);
    let headers = header_files(&k, &files);
    let t = tmpdir();
    for v in [
        "3.0.1+driver",
        "4.0.0+driver",
        "6.0.1+driver",
        "7.0.0+driver",
    ] {
        let out = t.path().join(v);
        let (code, json, stderr) = build(&headers, &shared_driver(v), Some(v), &out);
        assert_eq!(code, 0, "{v} on {}:\n{stderr}", k.release);
        assert_eq!(json["driver_version"], v);
        validated(&json, &k.release, v, Arch::X86_64);
    }
}
