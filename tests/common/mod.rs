//! Shared test inputs: real Debian packages and real Falco sources, downloaded through
//! probeforge's own repository client from the mirror in this machine's APT sources (or
//! `PROBEFORGE_MIRROR_*`), cached under `target/test-cache`. An unreachable mirror fails the
//! test: these tests never skip.
#![allow(dead_code)]

/// Headless chromium and a loopback static server, for the site's tests and bench.
pub mod browser;
/// Arch packages and repositories, Bottlerocket kits and TUF repositories, from real headers.
pub mod distros;
pub mod github;
/// Throwaway OpenPGP keys made by gpg(1).
pub mod gpg;
/// The kbuild reference, staged without probeforge's library.
pub mod kbuild;
/// The probe against kbuild, cell by cell.
pub mod matrix;
/// RPM packages and repositories made by rpmbuild and createrepo_c.
pub mod rpm;
pub mod server;
/// A signed APT mirror on loopback that changes while `probeforge watch` polls it.
pub mod watch_mirror;

#[allow(unused_imports)]
pub use kbuild::{kbuild_setup, KbuildTree};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use probeforge::http::{Client, Config};
use probeforge::kernel::Arch;
use probeforge::repo::{Catalog, KernelRecord, Lister, Mirrors};

pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-cache")
}

pub struct Net {
    pub client: Client,
    pub catalog: Catalog,
    pub mirrors: Mirrors,
}

pub fn net() -> &'static Net {
    static NET: OnceLock<Net> = OnceLock::new();
    NET.get_or_init(|| {
        let mirrors = Mirrors::from_env_and_host(&[]);
        assert!(
            mirrors.overrides.contains_key("debian") || mirrors.from_apt.contains_key("debian"),
            "no Debian mirror: the tests need one in /etc/apt/sources.list* or PROBEFORGE_MIRROR_DEBIAN"
        );
        Net {
            client: Client::new(Config::new(cache_dir())),
            catalog: Catalog::embedded(),
            mirrors,
        }
    })
}

pub fn lister() -> Lister<'static> {
    let n = net();
    Lister {
        client: &n.client,
        catalog: &n.catalog,
        mirrors: &n.mirrors,
    }
}

/// The newest plain-flavour kernel of a Debian release's own suite (not backports), e.g.
/// ("bookworm", X86_64) -> 6.1.0-N-amd64.
pub fn debian_kernel(suite: &str, arch: Arch) -> (KernelRecord, Vec<PathBuf>) {
    // Each release's own kernel series (its -security also carries backported series).
    let series = match suite {
        "bullseye" => "5.10.",
        "bookworm" => "6.1.",
        "trixie" => "6.12.",
        other => panic!("no kernel series known for {other}"),
    };
    let flavour = format!("-{}", arch.debian());
    let all = lister()
        .list(&format!("debian-{suite}"), &[arch])
        .unwrap_or_else(|e| panic!("listing debian-{suite}: {e:#?}"));
    let mut candidates: Vec<KernelRecord> = all
        .into_iter()
        .filter(|k| {
            (k.origin == suite || k.origin == format!("{suite}-security"))
                && k.release.starts_with(series)
                && k.release.ends_with(&flavour)
                && !k.release.contains("-cloud-")
                && !k.release.contains("-rt-")
        })
        .collect();
    candidates.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
    });
    assert!(
        !candidates.is_empty(),
        "no {flavour} kernel in debian-{suite}"
    );
    // Mirrors can list a package whose file is gone (seen: an arm64 header package of
    // bullseye-security answering 404): take the newest kernel whose set is really there.
    for k in candidates {
        // What a probe build reads (kbuild's package, host binaries, is fetched separately
        // where a test runs kbuild itself).
        let k = Lister::for_build(&k);
        match lister().fetch(&k) {
            Ok(files) => return (k, files),
            Err(probeforge::repo::Error::Unavailable { .. }) => continue,
            Err(e) => panic!("fetch {}: {e:#?}", k.release),
        }
    }
    panic!("no {flavour} kernel of debian-{suite} can be downloaded completely")
}

/// The newest 7.x kernel Debian ships (trixie-backports).
pub fn debian_7x_kernel(arch: Arch) -> (KernelRecord, Vec<PathBuf>) {
    let flavour = format!("-{}", arch.debian());
    let k = lister()
        .list("debian-trixie", &[arch])
        .expect("listing debian-trixie")
        .into_iter()
        .filter(|k| {
            k.release.starts_with("7.")
                && k.release.ends_with(&flavour)
                && !k.release.contains("-cloud-")
                && !k.release.contains("-rt-")
        })
        .max_by(|a, b| {
            probeforge::repo::apt::compare_versions(&a.packages[0].version, &b.packages[0].version)
        })
        .expect("a 7.x kernel in trixie-backports");
    let k = Lister::for_build(&k);
    let files = lister().fetch(&k).expect("fetch 7.x headers");
    (k, files)
}

/// Header packages only (no linux-kbuild), as a probe build needs.
pub fn header_files(k: &KernelRecord, files: &[PathBuf]) -> Vec<PathBuf> {
    k.packages
        .iter()
        .zip(files)
        .filter(|(p, _)| p.name.starts_with("linux-headers-"))
        .map(|(_, f)| f.clone())
        .collect()
}

/// A package by name from a Debian target.
pub fn debian_package(target: &str, arch: Arch, name: &str) -> PathBuf {
    let p = lister()
        .find_package(target, arch, name)
        .unwrap_or_else(|e| panic!("{name}: {e:#?}"));
    net()
        .client
        .fetch_verified(&p.url, &p.sha256, Some(p.size))
        .unwrap_or_else(|e| panic!("{name}: {e:#?}"))
        .0
}

/// Debian's `falcosecurity-libs` 0.20.0 `.orig.tar.gz` (= 8.0.0+driver).
pub fn libs_0_20_0() -> PathBuf {
    let n = net();
    let cat = probeforge::driver::SourceCatalog::embedded();
    let known = cat
        .known
        .iter()
        .find(|k| k.version == "8.0.0+driver")
        .unwrap();
    let s = &known.sources[0];
    let mirror = n
        .mirrors
        .resolve(&n.catalog, s.mirror.as_deref().unwrap())
        .unwrap();
    let url = format!("{mirror}/{}", s.path.as_deref().unwrap());
    n.client
        .fetch_verified(&url, &s.sha256, None)
        .expect("falcosecurity-libs source")
        .0
}

/// Debian's `falcosecurity-scap-dkms` (bookworm): the 2022 driver, configured.
pub fn scap_dkms() -> PathBuf {
    debian_package("debian-bookworm", Arch::X86_64, "falcosecurity-scap-dkms")
}

/// `probeforge build` arguments for libs 0.20.0 (driver 8.0.0+driver) from header files.
pub fn build_args(headers: &[PathBuf], driver: &Path, out: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "build".into(),
        "--driver-source".into(),
        driver.display().to_string(),
        "--driver-version".into(),
        "8.0.0+driver".into(),
        "-o".into(),
        out.display().to_string(),
        "--headers".into(),
    ];
    a.extend(headers.iter().map(|h| h.display().to_string()));
    a
}

/// The arguments naming the driver most tests build: libs 0.20.0 as 8.0.0+driver.
pub fn driver_8_args() -> Vec<String> {
    vec![
        "--driver-source".into(),
        libs_0_20_0().display().to_string(),
        "--driver-version".into(),
        "8.0.0+driver".into(),
    ]
}

/// `probeforge build --target T --kernel K -o OUT` for driver 8.0.0+driver.
pub fn build_target_args(target: &str, kernel: &str, out: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["build", "--target", target, "--kernel", kernel]
        .map(String::from)
        .to_vec();
    a.extend(driver_8_args());
    a.extend(["-o".into(), out.display().to_string()]);
    a
}

/// `probeforge build-all <kernels...> --only RE --repo REPO --json` for driver 8.0.0+driver:
/// the batch most tests run. `kernels` is targets (and `--arch`), or `--from FILE`.
pub fn build_all_args(kernels: &[&str], only: &str, repo: &Path) -> Vec<String> {
    let mut a = vec!["build-all".to_owned()];
    a.extend(kernels.iter().map(|k| k.to_string()));
    a.extend(["--only".into(), only.into(), "--repo".into()]);
    a.push(repo.display().to_string());
    a.extend(driver_8_args());
    a.push("--json".into());
    a
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_probeforge"))
}

/// Runs the probeforge binary with a private cache (`--cache-dir`): (exit code, stdout,
/// stderr).
pub fn cli(args: &[&str], cache: &Path) -> (i32, String, String) {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--cache-dir".as_ref(), cache.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    run(&all)
}

/// Runs the probeforge binary with the test cache; returns (status code, stdout, stderr).
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("PROBEFORGE_CACHE", cache_dir())
        .output()
        .expect("run probeforge");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

pub fn tmpdir() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-tmp");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("t-")
        .tempdir_in(base)
        .unwrap()
}

/// A RHEL-style kernel-devel: one tree under /usr/src/kernels/R, built by rpmbuild from real
/// Debian headers.
pub fn build_kernel_devel_rpm(t: &Path) -> (PathBuf, String) {
    build_kernel_devel_rpm_as(t, None)
}

/// The newest bookworm amd64 kernel's headers as one tree (the -common srctree with the
/// objtree's generated files over it, no links, no include-Makefile): the single-tree layout of
/// RPM kernel-devel and COS headers. Returns the kernel and the tree (created at `tree`).
pub fn single_tree(t: &Path, tree: &Path) -> KernelRecord {
    let (k, common, obj) = rpm::debian_headers(t);
    if let Some(parent) = tree.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&common)
        .arg(tree)
        .status()
        .unwrap()
        .success());
    rpm::copy_objtree(&obj, tree);
    k
}

/// Same, optionally renaming the kernel Amazon/RHEL-style: (version, release) makes
/// `uname -r` `version-release.x86_64` and the package `kernel-devel-version-release`.
pub fn build_kernel_devel_rpm_as(t: &Path, rename: Option<(&str, &str)>) -> (PathBuf, String) {
    let tree = t.join("tree");
    let k = single_tree(t, &tree);
    let (version, release, uts) = match rename {
        Some((v, r)) => (v.to_owned(), r.to_owned(), format!("{v}-{r}.x86_64")),
        None => ("6.1.0".to_owned(), "1".to_owned(), k.release.clone()),
    };
    if rename.is_some() {
        rpm::rename_kernel(&tree, &uts, None, None);
    }
    let dest = format!("usr/src/kernels/{uts}");
    let rpm = rpm::rpmbuild(
        t,
        &rpm::Spec {
            name: "kernel-devel",
            version: &version,
            release: &release,
            arch: "x86_64",
            trees: vec![(tree, dest.clone())],
            files: vec![],
            links: vec![(
                format!("{dest}/source-link"),
                format!("../../../usr/src/kernels/{uts}"),
            )],
            preamble: vec![],
        },
    );
    (rpm, uts)
}

/// The `linux-kbuild-*` package a Debian kernel's set depends on (for tests that run kbuild).
pub fn kbuild_name(suite: &str, arch: Arch, release: &str) -> String {
    lister()
        .list(&format!("debian-{suite}"), &[arch])
        .unwrap()
        .into_iter()
        .find(|k| k.release == release)
        .and_then(|k| {
            k.packages
                .into_iter()
                .find(|p| p.name.starts_with("linux-kbuild-"))
        })
        .map(|p| p.name)
        .expect("a linux-kbuild dependency")
}

/// A download cache holding the test cache's packages as hard links (nothing copied), with no
/// metadata and no compile cache: a run with it compiles every probe, so "built" means built.
/// Never damage a file of it in place (it may be a hard link into the shared test cache).
pub fn fresh_cache(at: &Path) -> PathBuf {
    std::fs::create_dir_all(at).unwrap();
    assert!(Command::new("cp")
        .arg("-al")
        .arg(cache_dir().join("sha256"))
        .arg(at.join("sha256"))
        .status()
        .unwrap()
        .success());
    at.to_owned()
}

/// Every file under `repo` (relative path, sha256), sorted: a repository's whole content.
pub fn tree(repo: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = walkdir::WalkDir::new(repo)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(repo).unwrap().display().to_string();
            (rel, sha256_file(e.path()))
        })
        .collect();
    v.sort();
    v
}

/// Falco's file name for a listed kernel, as Falco's repository names it and its loader asks
/// for it (`probeforge::loader`: on Debian the release is the package version and flavour).
pub fn falco_file(k: &KernelRecord, ext: &str) -> String {
    format!(
        "falco_{}_{}_{}.{ext}",
        k.target_id,
        k.file_release(),
        k.kernel_version
    )
}
