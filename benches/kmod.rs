//! Falco's kernel module for 4 bookworm 6.1 kernels that share Debian 12's gcc-12 (the newest
//! of each flavour the mirror serves, then older ABIs): `probeforge build-all --driver kmod`
//! (kernels in parallel over 2 cores, one `make` job each; its compile cache emptied first;
//! unpacking and publishing included) against a serial dkms-style loop
//! (`make -C <objtree> M=<driver> modules -j2` per kernel with the host's gcc-12, the distro's
//! compiler, as dkms runs it, from unpacked kernel trees). Both build the same
//! 9.1.0+driver sources (Debian's `falcosecurity-scap-dkms` 0.23.2). Prints wall time per module
//! and the ratio, and whether both paths gave the same bytes (the dkms-style loop is given the
//! same `-ffile-prefix-map`s for that: the pinned gcc-12 and the host's must agree).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/drivers.rs"]
mod drivers;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use probeforge::kernel::{Arch, KernelTree};
use probeforge::kmod::{gcc, kbuild, Compiler, GccManifest, KernelCompiler};

fn main() {
    let manifest = GccManifest::embedded()
        .into_iter()
        .find(|m| m.name == "gcc-12-debian12")
        .expect("gcc-12-debian12");
    let n = common::net();
    let gcc_root = gcc::fetch(&manifest, &n.client, &n.catalog, &n.mirrors, &|_, _, _| {
        Ok(())
    })
    .expect("gcc-12");
    let as_named = KernelCompiler {
        text: manifest.version_text.clone(),
        gcc_version: 120200,
    };
    Compiler::pinned(&manifest, &gcc_root, &as_named).expect("pinned gcc-12 runs");

    // Bookworm's own 6.1 kernels, newest first; one per flavour first, then older ABIs.
    let mut all: Vec<_> = common::lister()
        .list("debian-bookworm", &[Arch::X86_64])
        .expect("list bookworm")
        .into_iter()
        .filter(|k| {
            (k.origin == "bookworm" || k.origin == "bookworm-security")
                && k.release.starts_with("6.1.")
        })
        .collect();
    all.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
            .then(a.release.cmp(&b.release))
    });
    let flavour = |r: &str| r.splitn(3, '-').nth(2).unwrap_or("").to_owned();
    let mut order = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for k in &all {
        if seen.insert(flavour(&k.release)) {
            order.push(k.clone());
        }
    }
    let rest: Vec<_> = all.iter().filter(|k| !order.contains(k)).cloned().collect();
    order.extend(rest);

    let t = common::tmpdir();
    let mut trees: Vec<KernelTree> = Vec::new();
    for k in order {
        if trees.len() == 4 {
            break;
        }
        let Ok(files) = common::lister().fetch(&k) else {
            continue;
        };
        let dir = t.path().join(&k.release);
        let tree = kbuild::stage_kernel(&files, &dir.join("root")).expect("stage kernel");
        match KernelCompiler::of(&tree) {
            Ok(c) if c.text == manifest.version_text => trees.push(tree),
            Ok(c) => eprintln!("skip {}: built by {}", k.release, c.text),
            Err(e) => eprintln!("skip {}: {e}", k.release),
        }
    }
    assert_eq!(trees.len(), 4, "4 bookworm 6.1 kernels built by gcc-12");
    let dkms = drivers::scap_dkms_0_23_2();

    // dkms-style: one kernel after the other, `make -j2`, the host's gcc-12.
    let host = Path::new("/usr/bin/gcc-12");
    let started = Instant::now();
    let mut serial = Vec::new();
    for tree in &trees {
        let want = KernelCompiler::of(tree).unwrap();
        Compiler::host(host, &want).expect("the host's gcc-12 is the kernel's");
        let scratch = tree.root.parent().unwrap().join("dkms");
        let driver = probeforge::driver::open(&dkms, &scratch).expect("open driver");
        let staged = kbuild::stage_driver(
            &driver,
            "9.1.0+driver",
            kbuild::MODULE_NAME,
            &scratch.join("src"),
        )
        .expect("stage");
        let t0 = Instant::now();
        let out = Command::new("make")
            .arg("-C")
            .arg(&tree.objtree)
            .arg(format!("M={}", staged.dir.display()))
            .arg(format!("KERNELDIR={}", tree.objtree.display()))
            .arg(format!("CC={}", host.display()))
            // Only so the bytes can be compared with probeforge's: paths as on the target.
            .arg(format!(
                "KCFLAGS=-ffile-prefix-map={}={} -ffile-prefix-map={}/=",
                staged.dir.canonicalize().unwrap().display(),
                staged.mapped,
                tree.root.canonicalize().unwrap().display()
            ))
            .arg("-j2")
            .arg("modules")
            .output()
            .expect("make");
        assert!(
            out.status.success(),
            "{}: {}",
            tree.release,
            String::from_utf8_lossy(&out.stderr)
        );
        let ko = staged.dir.join("falco.ko");
        let sha = probeforge::base::sha256(&std::fs::read(&ko).expect("falco.ko"));
        serial.push((tree.release.clone(), t0.elapsed().as_secs_f64(), sha));
    }
    let serial_wall = started.elapsed().as_secs_f64();

    // probeforge as the nightly job runs it: `build-all --driver kmod` over the 4 kernels (2
    // at a time, one make job each), its compile cache emptied first; its time includes what
    // the loop's does not: unpacking each kernel's packages (already downloaded) and
    // publishing into a repository.
    let _ = std::fs::remove_dir_all(common::cache_dir().join("modules"));
    let repo = t.path().join("repo");
    let only = format!(
        "^({})$",
        trees
            .iter()
            .map(|t| regex::escape(&t.release))
            .collect::<Vec<_>>()
            .join("|")
    );
    let started = Instant::now();
    let (code, out, err) = common::run(&[
        "build-all",
        "debian-bookworm",
        "--arch",
        "x86_64",
        "--only",
        &only,
        "--driver",
        "kmod",
        "--driver-source",
        dkms.to_str().unwrap(),
        "--driver-version",
        "9.1.0+driver",
        "--jobs",
        "2",
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ]);
    let pf_wall = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{err}\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let built: Vec<(String, f64, String)> = trees
        .iter()
        .map(|tree| {
            let r = v["kernels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["release"] == tree.release.as_str())
                .unwrap_or_else(|| panic!("no result for {}: {v:#}", tree.release));
            assert_eq!(r["status"], "built", "{r}");
            (
                tree.release.clone(),
                r["seconds"].as_f64().unwrap(),
                r["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    println!("kernel                       build-all (s, 2 at once)   dkms-style (s, serial)");
    for ((r, a, _), (_, b, _)) in built.iter().zip(&serial) {
        println!("{r:<28} {a:>10.1} {b:>26.1}");
    }
    let same = built
        .iter()
        .zip(&serial)
        .filter(|((_, _, a), (_, _, b))| a == b)
        .count();
    println!(
        "probeforge build-all --driver kmod: {} modules in {pf_wall:.1} s wall = {:.1} s per module",
        built.len(),
        pf_wall / built.len() as f64
    );
    println!(
        "dkms-style loop: {} modules in {serial_wall:.1} s wall = {:.1} s per module",
        serial.len(),
        serial_wall / serial.len() as f64
    );
    println!(
        "ratio (dkms-style / probeforge): {:.2}x; same bytes on both paths: {same} of {}",
        serial_wall / pf_wall,
        built.len()
    );
}
