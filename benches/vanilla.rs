//! Preparing a kernel tree from its source (`--kernel-source`, `--target vanilla`, flatcar,
//! talos, minikube): probeforge's `vanilla::prepare` (in-process unpack through `extract`,
//! `make olddefconfig modules_prepare`, the tree kept in the cache) against what driverkit's
//! vanilla builder runs (`tar -xJf`, the config copied in, `make olddefconfig`, `make
//! modules_prepare`), on Debian's real `linux-source-6.1` tarball and the `.config` of the
//! matching `linux-image` package, measured in the same run; then the second kernel of a
//! nightly that needs that tree (probeforge: the cache; driverkit: all of it again). Printed as
//! ratios (< 1: probeforge is faster). One run each: a run is minutes.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use probeforge::kernel::Arch;

fn sh(cmd: &mut Command) {
    let st = cmd.status().unwrap();
    assert!(st.success(), "{cmd:?}: {st}");
}

/// `tar -xJf TARBALL -C DIR`, as driverkit's scripts unpack a kernel source.
fn tar_x(tarball: &Path, dir: &Path) {
    sh(Command::new("tar")
        .arg("-xJf")
        .arg(tarball)
        .arg("-C")
        .arg(dir));
}

fn main() {
    let lister = common::lister();
    let source = lister
        .find_package("debian-bookworm", Arch::X86_64, "linux-source-6.1")
        .expect("linux-source-6.1 in bookworm");
    let kernels = lister
        .list("debian-bookworm", &[Arch::X86_64])
        .expect("list bookworm");
    let k = kernels
        .iter()
        .find(|k| {
            k.release.ends_with("-amd64")
                && !k.release.contains("-cloud-")
                && !k.release.contains("-rt-")
                && k.packages.iter().any(|p| {
                    p.name == format!("linux-headers-{}", k.release) && p.version == source.version
                })
        })
        .expect("the bookworm kernel of that source");
    let image = common::debian_package(
        "debian-bookworm",
        Arch::X86_64,
        &format!("linux-image-{}-unsigned", k.release),
    );
    let deb = common::net()
        .client
        .fetch_verified(&source.url, &source.sha256, Some(source.size))
        .unwrap()
        .0;
    let t = common::tmpdir();
    // The tarball itself, as kernel.org serves it (both sides start from it).
    sh(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(t.path().join("deb")));
    let tarball = std::fs::read_dir(t.path().join("deb/usr/src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tar.xz"))
        .unwrap();
    let config = probeforge::vanilla::read_config(&image, Some(&k.release), t.path())
        .unwrap()
        .bytes;
    let config_file = t.path().join("config");
    std::fs::write(&config_file, &config).unwrap();
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());

    // Each contender starts with the page cache's dirty pages written (`sync`): otherwise one
    // pays for the other's 1.4 GB of writeback.
    let settle = || sh(&mut Command::new("sync"));
    // driverkit's vanilla_kernel.sh, as a shell runs it.
    let reference = |n: usize| -> Duration {
        let dir = t.path().join(format!("ref{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        settle();
        let start = Instant::now();
        tar_x(&tarball, &dir);
        let top = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::copy(&config_file, top.join(".config")).unwrap();
        for target in ["olddefconfig", "modules_prepare"] {
            sh(Command::new("make")
                .arg("-C")
                .arg(&top)
                .arg(format!("-j{jobs}"))
                .arg(format!("KERNELRELEASE={}", k.release))
                .arg(target)
                .stdout(std::process::Stdio::null()));
        }
        let d = start.elapsed();
        std::fs::remove_dir_all(&dir).unwrap();
        d
    };
    let ours = |cache: &Path| -> (Duration, bool) {
        settle();
        let start = Instant::now();
        let p = probeforge::vanilla::prepare(
            &probeforge::vanilla::Request {
                source: tarball.clone(),
                config: config_file.clone(),
                release: Some(k.release.clone()),
                arch: Arch::X86_64,
                jobs,
            },
            cache,
            t.path(),
        )
        .unwrap();
        (start.elapsed(), p.cached)
    };
    // Where the time goes: the unpack alone (probeforge's, every entry through its guard,
    // against GNU tar with xz).
    let unpack_ours = |n: usize| -> Duration {
        let root = t.path().join(format!("unpack-ours{n}"));
        settle();
        let start = Instant::now();
        probeforge::extract::unpack_all(
            std::slice::from_ref(&tarball),
            &root,
            probeforge::extract::Selection::Everything,
            probeforge::extract::Limits::default(),
        )
        .unwrap();
        let d = start.elapsed();
        std::fs::remove_dir_all(&root).unwrap();
        d
    };
    let unpack_tar = |n: usize| -> Duration {
        let root = t.path().join(format!("unpack-tar{n}"));
        std::fs::create_dir_all(&root).unwrap();
        settle();
        let start = Instant::now();
        tar_x(&tarball, &root);
        let d = start.elapsed();
        std::fs::remove_dir_all(&root).unwrap();
        d
    };
    const RUNS: usize = 3;
    let (mut first, mut second, mut unpack) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..RUNS {
        // Interleaved: A B A B ...; each of ours in a cache of its own, then used again.
        let cache = t.path().join(format!("cache{n}"));
        let r = reference(n);
        let (o, cached) = ours(&cache);
        assert!(!cached);
        first.push((o, r));
        let r = reference(n);
        let (o, cached) = ours(&cache);
        assert!(cached, "the second prepare is the cache's");
        second.push((o, r));
        std::fs::remove_dir_all(&cache).unwrap();
        unpack.push((unpack_ours(n), unpack_tar(n)));
    }
    println!(
        "kernel tree of {} (linux-source {}), make -j{jobs}, {RUNS} runs interleaved: min / median",
        k.release, source.version
    );
    for (what, pairs, reference) in [
        ("first tree ", &first, "driverkit-style tar+make"),
        ("unpack only", &unpack, "tar -xJf                "),
        ("second use ", &second, "driverkit-style tar+make"),
    ] {
        let (mut o, mut r): (Vec<f64>, Vec<f64>) = pairs
            .iter()
            .map(|(o, r)| (o.as_secs_f64(), r.as_secs_f64()))
            .unzip();
        o.sort_by(f64::total_cmp);
        r.sort_by(f64::total_cmp);
        let (om, rm) = (o[o.len() / 2], r[r.len() / 2]);
        println!(
            "  {what}: probeforge {:>7.3} / {:>7.3} s   {reference} {:>6.1} / {:>6.1} s   ratio (medians) {:.4}",
            o[0],
            om,
            r[0],
            rm,
            om / rm
        );
    }
}
