//! The driver sources of the driver matrix, shared by `tests/drivers.rs` and
//! `benches/drivers.rs` (included by `#[path]` beside `common`): the falcosecurity/libs GitHub
//! archives in `../shared/drivers` (checked against their SHA256SUMS), Debian's
//! `falcosecurity-libs` orig tarball and its `falcosecurity-scap-dkms` packages.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use probeforge::kernel::Arch;

use crate::common;

/// A falcosecurity/libs GitHub archive from `../shared/drivers`, checked against SHA256SUMS.
pub fn shared_driver(version: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/drivers");
    let name = format!("libs-{version}.tar.gz");
    let sums_path = dir.join("SHA256SUMS");
    let sums = std::fs::read_to_string(&sums_path).unwrap_or_else(|e| {
        panic!(
            "`{}`: the driver archives these tests build are missing ({e})",
            sums_path.display()
        )
    });
    let want = sums
        .lines()
        .find_map(|l| l.strip_suffix(&name).map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| panic!("`{name}` is not listed in `{}`", sums_path.display()));
    let p = dir.join(&name);
    assert!(p.is_file(), "`{}` is missing", p.display());
    assert_eq!(
        common::sha256_file(&p),
        want,
        "`{}` differs from SHA256SUMS",
        p.display()
    );
    p
}

/// Debian's `falcosecurity-scap-dkms` 0.23.2 (forky/sid): driver/bpf of 9.1.0+driver, configured.
/// The catalog's known copy, fetched from the Debian mirror and checked against its digest.
pub fn scap_dkms_0_23_2() -> PathBuf {
    let n = common::net();
    let cat = probeforge::driver::SourceCatalog::embedded();
    let s = cat
        .known
        .iter()
        .find(|k| k.version == "9.1.0+driver")
        .and_then(|k| k.sources.first())
        .expect("a known source of 9.1.0+driver");
    let mirror = n
        .mirrors
        .resolve(&n.catalog, s.mirror.as_deref().unwrap())
        .unwrap();
    let url = format!("{mirror}/{}", s.path.as_deref().unwrap());
    n.client
        .fetch_verified(&url, &s.sha256, None)
        .unwrap_or_else(|e| panic!("falcosecurity-scap-dkms 0.23.2: {e:#?}"))
        .0
}

/// One driver source of the matrix.
pub struct Driver {
    /// The driver version Falco's loaders know it as.
    pub version: &'static str,
    /// How it is given: GitHub archive, Debian orig tarball, dkms package.
    pub form: &'static str,
    pub path: PathBuf,
}

/// Every driver source the matrix builds, oldest first.
pub fn matrix_drivers() -> Vec<Driver> {
    let mut v: Vec<Driver> = [
        "3.0.1+driver",
        "4.0.0+driver",
        "6.0.1+driver",
        "7.0.0+driver",
    ]
    .into_iter()
    .map(|version| Driver {
        version,
        form: "github archive",
        path: shared_driver(version),
    })
    .collect();
    v.push(Driver {
        version: "8.0.0+driver",
        form: "debian orig tarball",
        path: common::libs_0_20_0(),
    });
    v.push(Driver {
        version: "9.1.0+driver",
        form: "dkms package 0.23.2",
        path: scap_dkms_0_23_2(),
    });
    v.push(Driver {
        version: "0.1.1dev+git20220316.e5c53d64",
        form: "dkms package (2022)",
        path: common::scap_dkms(),
    });
    v
}

/// The Debian kernel lines of the matrix: (line, kernel record, its files).
pub fn kernel_line(line: &str, arch: Arch) -> (probeforge::repo::KernelRecord, Vec<PathBuf>) {
    match line {
        "5.10" => common::debian_kernel("bullseye", arch),
        "6.1" => common::debian_kernel("bookworm", arch),
        "6.12" => common::debian_kernel("trixie", arch),
        "7.x" => common::debian_7x_kernel(arch),
        other => panic!("no Debian kernel line {other}"),
    }
}

pub const LINES: [&str; 4] = ["5.10", "6.1", "6.12", "7.x"];
