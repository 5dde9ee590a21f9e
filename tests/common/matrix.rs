//! The probe against kbuild itself, one cell of the matrix (suite x arch x driver layout):
//! the same bytes, or for 7.x every section but the paths in debug info. `tests/compile.rs`
//! runs a slice of it, `cargo bench --bench compile_matrix` all of it.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use probeforge::kernel::Arch;

/// Builds the probe the way falco-driver-loader does: `make -C <objtree> M=<driver>/bpf`, on
/// headers unpacked by dpkg-deb with the objtree Makefile's absolute include patched (as
/// driverkit does), the driver staged as its own install stages it and patched by patch(1)
/// (`common::kbuild`, no probeforge code). Returns the staged tree and the probe's sha256.
pub fn kbuild_reference(
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
pub fn kbuild_deb(suite: &str, arch: Arch, release: &str) -> PathBuf {
    let name = kbuild_name(suite, arch, release);
    debian_package(&format!("debian-{suite}"), Arch::host().unwrap(), &name)
}

/// Compares two objects section by section, leaving out DWARF and BTF (which carry source paths):
/// (sections equal, names of sections that differ or exist on one side only).
pub fn same_sections(a: &Path, b: &Path) -> (usize, Vec<String>) {
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

pub fn patches_of(v: &serde_json::Value) -> Vec<String> {
    v["patches"]
        .as_array()
        .expect("patches in the build's JSON")
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// Every check of the build's report passed, and there were checks.
pub fn all_checks_ok(v: &serde_json::Value) {
    let checks = v["report"]["checks"].as_array().expect("report.checks");
    assert!(checks.len() >= 5, "too few checks: {checks:?}");
    let failed: Vec<_> = checks.iter().filter(|c| c["ok"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:?}");
}

pub fn native(
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

pub fn same_as_kbuild(suite: &str, arch: Arch, dkms: bool) {
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
    assert_eq!(names, [falco_file(&k, "o")]);
    all_checks_ok(&v);
}

/// 7.x kernels: the driver needs the kernfs patch (and the 2022 driver the rss_stat one too), and
/// the headers need the kernel's C dialect. The same probe as kbuild's on the same tree patched
/// by patch(1).
pub fn build_7x(arch: Arch, dkms: bool) {
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
