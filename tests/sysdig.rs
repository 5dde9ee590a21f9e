//! Falco's real userspace proves probeforge's probes: Debian's sysdig, built on libscap, runs
//! `sysdig --bpf=<probe>` in the probe's own kernel under QEMU (`verify --userspace sysdig`),
//! over the loader's workload, and must print its exec with the exact arguments and its open
//! with the exact path. Both Debian pairs: bookworm's sysdig 0.29.3 with the 2022 driver of
//! bookworm's `falcosecurity-scap-dkms`, and forky's sysdig 0.41.4 with 9.1.0+driver (forky's
//! `falcosecurity-scap-dkms` 0.23.2). sysdig, its libraries, the kernels and the driver
//! sources are all downloaded at test time (cached under target/test-cache); kernels are
//! picked from the live index.

mod common;
#[path = "common/drivers.rs"]
mod drivers;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use probeforge::kernel::Arch;
use probeforge::repo::KernelRecord;
use probeforge::verify::workload::{EXEC_ARG, INIT_PATH, MARKER_PATH};

/// The newest plain amd64 kernel of a series in one Debian suite exactly (`bullseye` is its
/// point release, without `bullseye-security`).
fn kernel_of_suite(target: &str, origin: &str, series: &str) -> (KernelRecord, Vec<PathBuf>) {
    let mut candidates: Vec<KernelRecord> = lister()
        .list(target, &[Arch::X86_64])
        .unwrap_or_else(|e| panic!("listing {target}: {e:#?}"))
        .into_iter()
        .filter(|k| {
            k.origin == origin
                && k.release.starts_with(series)
                && k.release.ends_with("-amd64")
                && !k.release.contains("-cloud-")
                && !k.release.contains("-rt-")
        })
        .collect();
    candidates.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
    });
    for k in candidates {
        let k = probeforge::repo::Lister::for_build(&k);
        if let Ok(files) = lister().fetch(&k) {
            return (k, files);
        }
    }
    panic!("no {series}x amd64 kernel of {origin} can be downloaded")
}

/// Builds the probe of `driver` for a kernel from its header packages.
fn probe(k: &KernelRecord, files: &[PathBuf], driver: &Path, version: &str, t: &Path) -> PathBuf {
    let out = t.join("out");
    let mut a = vec![
        "build".to_owned(),
        "--driver-source".into(),
        driver.display().to_string(),
        "--driver-version".into(),
        version.into(),
        "-o".into(),
        out.display().to_string(),
        "--headers".into(),
    ];
    a.extend(
        header_files(k, files)
            .iter()
            .map(|h| h.display().to_string()),
    );
    let (code, _, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    fs::read_dir(&out).unwrap().next().unwrap().unwrap().path()
}

/// `verify --userspace <spec> --json` of one probe in a kernel image package.
fn verify_with_sysdig(spec: &str, probe: &Path, image: &Path) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(&[
        "verify",
        "--userspace",
        spec,
        "--accel",
        "tcg",
        "--json",
        "--kernel-image",
        image.to_str().unwrap(),
        probe.to_str().unwrap(),
    ]);
    (
        code,
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null),
        err,
    )
}

fn arg<'a>(event: &'a serde_json::Value, name: &str) -> &'a str {
    event["args"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str())
        .unwrap_or_else(|| panic!("no `{name}` in {event}"))
}

/// sysdig printed the workload: the exec of `/init` with exactly the marker argument (sysdig
/// shows the argument's NUL terminator as `.`), and the open of exactly the marker path with
/// a descriptor.
fn sysdig_printed_the_workload(v: &serde_json::Value, suite: &str, sysdig: &str, release: &str) {
    assert_eq!(v["booted_release"], release, "{v:#}");
    assert_eq!(v["userspace"]["suite"]["name"], suite, "{v:#}");
    assert!(
        v["userspace"]["sysdig_version"]
            .as_str()
            .unwrap()
            .starts_with(sysdig),
        "{v:#}"
    );
    let s = &v["reports"][0]["sysdig"];
    assert_eq!(s["ok"], true, "{s:#}");
    let exec = &s["execve"];
    assert_eq!(exec["dir"], "<", "{exec}");
    assert_eq!(arg(exec, "exe"), INIT_PATH, "{exec}");
    assert_eq!(arg(exec, "args"), format!("{EXEC_ARG}."), "{exec}");
    assert_eq!(arg(exec, "res"), "0", "{exec}");
    let open = &s["openat"];
    assert_eq!(arg(open, "name"), MARKER_PATH, "{open}");
    let fd = arg(open, "fd");
    assert!(
        fd.ends_with(&format!("(<f>{MARKER_PATH})")) && !fd.starts_with('-'),
        "{open}"
    );
}

/// bookworm's sysdig 0.29.3 with the 2022 driver (bookworm's `falcosecurity-scap-dkms`), on
/// the 5.10 of bullseye's point release. Not 6.1: there this 2022 libscap loads the probe and
/// then fails in its own double mapping of the perf ring (`mmap (3): Cannot allocate memory`),
/// and so do the later bullseye-security 5.10 kernels (5.10.0-46 measured): a userspace/kernel
/// mismatch, not the probe.
#[test]
fn bookworm_sysdig_captures_with_the_2022_dkms_probe_on_debian_5_10() {
    let (k, files) = kernel_of_suite("debian-bullseye", "bullseye", "5.10.");
    let t = tmpdir();
    let p = probe(
        &k,
        &files,
        &scap_dkms(),
        "0.1.1dev+git20220316.e5c53d64",
        t.path(),
    );
    let image = debian_package(
        "debian-bullseye",
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    // `sysdig` alone: the suite is the one whose libscap reads the probe's driver.
    let (code, v, err) = verify_with_sysdig("sysdig", &p, &image);
    assert_eq!(code, 0, "{err}\n{v:#}");
    sysdig_printed_the_workload(&v, "bookworm", "0.29.3", &k.release);
}

/// forky's sysdig 0.41.4 (libs 0.23.2) with 9.1.0+driver built from forky's
/// `falcosecurity-scap-dkms` 0.23.2, on Debian 6.12.
#[test]
fn forky_sysdig_captures_with_the_9_1_0_probe_on_debian_6_12() {
    let (k, files) = debian_kernel("trixie", Arch::X86_64);
    let t = tmpdir();
    let p = probe(
        &k,
        &files,
        &drivers::scap_dkms_0_23_2(),
        "9.1.0+driver",
        t.path(),
    );
    let image = debian_package(
        "debian-trixie",
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    let (code, v, err) = verify_with_sysdig("sysdig", &p, &image);
    assert_eq!(code, 0, "{err}\n{v:#}");
    sysdig_printed_the_workload(&v, "forky", "0.41.4", &k.release);
    // Every package of sysdig's closure is named with the digest it was checked against.
    for pkg in v["userspace"]["packages"].as_array().unwrap() {
        assert_eq!(pkg["sha256"].as_str().unwrap().len(), 64, "{pkg}");
    }
}
