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

    // driverkit's vanilla_kernel.sh, as a shell runs it.
    let reference = |n: usize| -> Duration {
        let dir = t.path().join(format!("ref{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let start = Instant::now();
        sh(Command::new("tar")
            .arg("-xJf")
            .arg(&tarball)
            .arg("-C")
            .arg(&dir));
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
    let cache = t.path().join("cache");
    let ours = |cache: &Path| -> (Duration, bool) {
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
    let r1 = reference(1);
    let (o1, cached) = ours(&cache);
    assert!(!cached);
    let r2 = reference(2);
    let (o2, cached) = ours(&cache);
    assert!(cached, "the second prepare is the cache's");
    println!(
        "kernel tree of {} (linux-source {}), make -j{jobs}",
        k.release, source.version
    );
    println!(
        "  first tree:  probeforge {:>7.1} s   driverkit-style tar+make {:>7.1} s   ratio {:.2}",
        o1.as_secs_f64(),
        r1.as_secs_f64(),
        o1.as_secs_f64() / r1.as_secs_f64()
    );
    println!(
        "  second use:  probeforge {:>7.3} s   driverkit-style tar+make {:>7.1} s   ratio {:.4}",
        o2.as_secs_f64(),
        r2.as_secs_f64(),
        o2.as_secs_f64() / r2.as_secs_f64()
    );
}
