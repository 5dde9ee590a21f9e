//! Kernels of one Debian flavour and the probes for them, for the verify tests and bench.
//! Included by path (`#[path = "common/images.rs"] mod images;`) beside `mod common;`.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{build_args, header_files, libs_0_20_0, lister, run};
use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;

/// The newest kernel of one flavour (`rt-amd64`, `arm64-16k`, ...) of a Debian release's own
/// series whose packages the mirror really serves.
pub fn debian_flavour_kernel(
    suite: &str,
    series: &str,
    flavour: &str,
    arch: Arch,
) -> (KernelRecord, Vec<PathBuf>) {
    let mut candidates: Vec<_> = lister()
        .list(&format!("debian-{suite}"), &[arch])
        .unwrap_or_else(|e| panic!("listing debian-{suite}: {e:#?}"))
        .into_iter()
        .filter(|k| {
            (k.origin == suite || k.origin == format!("{suite}-security"))
                && k.release.starts_with(series)
                && flavour_of(&k.release) == flavour
        })
        .collect();
    candidates.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
    });
    let mut errors = Vec::new();
    for k in candidates {
        let k = probeforge::repo::Lister::for_build(&k);
        match lister().fetch(&k) {
            Ok(files) => return (k, files),
            // A package the index lists but the mirror does not serve: the next one.
            Err(e) => errors.push(format!("{}: {e}", k.release)),
        }
    }
    panic!("no -{flavour} {series}x kernel of debian-{suite} can be downloaded: {errors:#?}")
}

/// A Debian kernel release's flavour: what follows the version and the ABI number
/// (`6.1.0-57-rt-amd64` -> `rt-amd64`, `6.12.118+deb13-arm64-16k` -> `arm64-16k`).
pub fn flavour_of(release: &str) -> &str {
    let rest = release.split_once('-').map_or("", |(_, r)| r);
    match rest.split_once('-') {
        Some((abi, f)) if abi.bytes().all(|b| b.is_ascii_digit()) => f,
        _ => rest,
    }
}

/// The libs 0.20.0 probe (8.0.0+driver) for a kernel, built from its header packages.
pub fn libs_probe(k: &KernelRecord, files: &[PathBuf], t: &Path) -> PathBuf {
    let out = t.join("out");
    let a = build_args(&header_files(k, files), &libs_0_20_0(), &out);
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    fs::read_dir(&out).unwrap().next().unwrap().unwrap().path()
}
