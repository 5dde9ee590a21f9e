//! The native build against kbuild itself: the same probe, byte for byte, for real Falco
//! sources on real Debian kernels; reproducibility; validation of good and bad probes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use probeforge::driver::Layout;
use probeforge::kernel::Arch;
use probeforge::patch::Catalog;

/// Builds the probe the way falco-driver-loader does: `make -C <objtree> M=<driver>/bpf`, on
/// headers unpacked by dpkg-deb with the objtree Makefile's absolute include patched (as
/// driverkit does). Debug-info paths are mapped the same way as the native build maps them,
/// through the driver Makefile's own KBUILD_EXTRA_CPPFLAGS. Returns the probe's sha256.
fn kbuild_reference(debs: &[PathBuf], kbuild_deb: &Path, driver: &Path, version: &str, arch: Arch, t: &Path) -> String {
    let root = t.join("kroot");
    for d in debs.iter().map(PathBuf::as_path).chain([kbuild_deb]) {
        let s = Command::new("dpkg-deb").arg("-x").arg(d).arg(&root).status().unwrap();
        assert!(s.success());
    }
    let objtree = fs::read_dir(root.join("usr/src")).unwrap().flatten().map(|e| e.path())
        .find(|p| p.join(".config").is_file()).expect("objtree");
    let mk = objtree.join("Makefile");
    let text = fs::read_to_string(&mk).unwrap();
    fs::write(&mk, text.replace("include /usr/src/", &format!("include {}/usr/src/", root.display()))).unwrap();
    // The scripts/ link points at the host's kbuild (same version, host architecture).
    let src_dir = t.join("ksrc");
    let source = probeforge::driver::open(driver, &src_dir).unwrap();
    let k = probeforge::kernel::KernelTree::find(&root, None).unwrap();
    let prepared = source.prepare(&t.join("kdrv"), Some(version), k.version, &Catalog::embedded()).unwrap();
    if source.layout == Layout::Libs {
        // The CMake install adds each configure module's Makefile, build.sh and Makefile.inc.
        let cfg = source.dir.join("bpf/configure");
        for m in &prepared.configure_modules {
            let d = prepared.bpf_dir.join("configure").join(m);
            fs::copy(cfg.join("Makefile"), d.join("Makefile")).unwrap();
            fs::copy(cfg.join("build.sh"), d.join("build.sh")).unwrap();
            let inc = fs::read_to_string(cfg.join("Makefile.inc.in")).unwrap().replace("@CONFIGURE_MODULE@", m);
            fs::write(d.join("Makefile.inc"), inc).unwrap();
        }
    }
    let clang = if arch == Arch::host().unwrap() { "clang".to_owned() } else { format!("clang --target={}", arch.triple()) };
    let out = Command::new("make")
        .arg("-C").arg(&objtree)
        .arg(format!("M={}", prepared.bpf_dir.display()))
        .arg(format!("CLANG={clang}"))
        .arg("LLC=llc")
        .arg(format!(
            "KBUILD_EXTRA_CPPFLAGS=-ffile-prefix-map={}= -ffile-prefix-map={}={}",
            root.display(), prepared.tree.display(), prepared.mapped_tree
        ))
        .output().unwrap();
    let probe = prepared.bpf_dir.join("probe.o");
    assert!(probe.is_file(), "kbuild failed:\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    sha256_file(&probe)
}

fn native(headers: &[PathBuf], driver: &Path, version: Option<&str>, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args: Vec<String> = vec!["build".into(), "--json".into(), "-o".into(), out.display().to_string(), "--driver-source".into(), driver.display().to_string()];
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
    let kbuild_name = k.packages.iter().find(|p| p.name.starts_with("linux-kbuild-")).unwrap().name.clone();
    let kbuild_deb = debian_package(&format!("debian-{suite}"), Arch::host().unwrap(), &kbuild_name);
    let (driver, version) = if dkms {
        (scap_dkms(), "0.1.1dev+git20220316.e5c53d64")
    } else {
        (libs_0_20_0(), "8.0.0+driver")
    };
    let t = tmpdir();
    let reference = kbuild_reference(&headers, &kbuild_deb, &driver, version, arch, t.path());
    let out = t.path().join("out");
    let v = native(&headers, &driver, if dkms { None } else { Some(version) }, &out, &[]);
    assert_eq!(v["sha256"], reference.as_str(), "{} {}: native differs from kbuild", k.release, version);
    // Nothing else in the output directory.
    let names: Vec<_> = fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    assert_eq!(names, [format!("falco_debian_{}_1.o", k.release)]);
    assert!(v["report"]["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true));
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
