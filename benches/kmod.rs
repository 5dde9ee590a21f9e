//! Falco's kernel module for 4 bookworm 6.1 kernels that share Debian 12's gcc-12 (the newest
//! of each flavour the mirror serves, then older ABIs): probeforge's kmod path (`kmod::build`,
//! kernels in parallel over 2 cores, one `make` job each) against a serial dkms-style loop
//! (`make -C <objtree> M=<driver> modules -j2` per kernel with the host's gcc-12, the distro's
//! compiler, as dkms runs it). Both start from unpacked kernel trees and the same staged
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
use probeforge::kmod::{self, gcc, kbuild, Compiler, GccManifest, KernelCompiler};
use rayon::prelude::*;

fn main() {
    let manifest = GccManifest::embedded()
        .into_iter()
        .find(|m| m.name == "gcc-12-debian12")
        .expect("gcc-12-debian12");
    let n = common::net();
    let gcc_root = gcc::fetch(&manifest, &n.client, &n.catalog, &n.mirrors).expect("gcc-12");
    let as_named = KernelCompiler {
        text: manifest.version_text.clone(),
        gcc_version: 120200,
    };
    let pinned = Compiler::pinned(&manifest, &gcc_root, &as_named).expect("pinned gcc-12");

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

    // The dkms-style loop first, on the trees as unpacked (probeforge's pinned path makes
    // their kbuild tools start through its loader).
    // dkms-style: one kernel after the other, `make -j2`, the host's gcc-12.
    let host = Path::new("/usr/bin/gcc-12");
    let started = Instant::now();
    let mut serial = Vec::new();
    for tree in &trees {
        let want = KernelCompiler::of(tree).unwrap();
        Compiler::host(host, &want).expect("the host's gcc-12 is the kernel's");
        let scratch = tree.root.parent().unwrap().join("dkms");
        let driver = probeforge::driver::open(&dkms, &scratch).expect("open driver");
        let staged =
            kbuild::stage_driver(&driver, "9.1.0+driver", &scratch.join("src")).expect("stage");
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

    // probeforge: every kernel in parallel, 2 at a time.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let built: Vec<(String, f64, String)> = pool.install(|| {
        trees
            .par_iter()
            .map(|tree| {
                let scratch = tree.root.parent().unwrap().join("pf");
                let driver = probeforge::driver::open(&dkms, &scratch).expect("open driver");
                let t0 = Instant::now();
                let m = kmod::build(&kmod::KmodRequest {
                    tree,
                    driver: &driver,
                    driver_version: Some("9.1.0+driver"),
                    compiler: &pinned,
                    target_id: "debian",
                    scratch: &scratch,
                    jobs: 1,
                })
                .unwrap_or_else(|e| panic!("{}: {e}", tree.release));
                (tree.release.clone(), t0.elapsed().as_secs_f64(), m.sha256)
            })
            .collect()
    });
    let pf_wall = started.elapsed().as_secs_f64();

    println!("kernel                       probeforge (s, in parallel)   dkms-style (s, serial)");
    for ((r, a, _), (_, b, _)) in built.iter().zip(&serial) {
        println!("{r:<28} {a:>10.1} {b:>26.1}");
    }
    let same = built
        .iter()
        .zip(&serial)
        .filter(|((_, _, a), (_, _, b))| a == b)
        .count();
    println!(
        "probeforge kmod: {} modules in {pf_wall:.1} s wall = {:.1} s per module",
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
