//! A batch of K real Debian kernels (packages already downloaded: both sides read the same
//! cached files), compared in the same run with
//!   (a) a serial kbuild loop over the same kernels (dpkg-deb -x, then make -C ... M=..., the
//!       way driverkit/falco-driver-loader work): goal <= 0.5;
//!   (b) the physical limit, the sum of clang+llc CPU seconds / cores: goal <= 1.15;
//!   (c) a warm re-run (everything published): goal under 2 s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Instant;

use probeforge::kernel::Arch;

fn main() {
    let k_count: usize = std::env::var("BENCH_KERNELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let all = common::lister()
        .list("debian-bookworm", &[Arch::X86_64])
        .unwrap();
    let picked: Vec<_> = all
        .into_iter()
        .filter(|k| k.release.starts_with("6.1.") && !k.release.contains("-rt-"))
        .rev()
        .take(k_count)
        .collect();
    let files: Vec<_> = picked
        .iter()
        .map(|k| common::lister().fetch(k).unwrap())
        .collect();
    let driver = common::libs_0_20_0();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = common::tmpdir();

    // (a) serial kbuild loop, its trees on the same scratch file system probeforge uses.
    let kb_scratch = tempfile::Builder::new()
        .prefix("kbuild-bench-")
        .tempdir_in(probeforge::pipeline::default_scratch())
        .unwrap();
    let start = Instant::now();
    for (k, f) in picked.iter().zip(&files) {
        let p = common::kbuild_setup(
            f,
            &driver,
            Some("8.0.0+driver"),
            &kb_scratch.path().join(format!("kb-{}", k.release)),
        );
        let s = Command::new("make")
            .arg("-C")
            .arg(&p.objtree)
            .arg(format!("M={}", p.bpf_dir.display()))
            .arg(format!("KERNELDIR={}", p.objtree.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(s.success() && p.bpf_dir.join("probe.o").is_file());
    }
    let kbuild = start.elapsed().as_secs_f64();

    // probeforge build-all over the same kernels, cold compile cache, empty repository.
    let only = format!(
        "^({})$",
        picked
            .iter()
            .map(|k| regex::escape(&k.release))
            .collect::<Vec<_>>()
            .join("|")
    );
    let repo = t.path().join("repo");
    let cache = t.path().join("cache");
    // Same downloads, fresh compile cache: copy the package cache only.
    let run = |cache: &std::path::Path| {
        let start = Instant::now();
        let o = Command::new(common::bin())
            .args([
                "build-all",
                "debian-bookworm",
                "--arch",
                "x86_64",
                "--only",
                &only,
                "--repo",
                repo.to_str().unwrap(),
                "--driver-source",
                driver.to_str().unwrap(),
                "--driver-version",
                "8.0.0+driver",
                "--json",
            ])
            .env("PROBEFORGE_CACHE", cache)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            start.elapsed().as_secs_f64(),
            serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        )
    };
    assert!(Command::new("cp")
        .arg("-a")
        .arg(common::cache_dir())
        .arg(&cache)
        .status()
        .unwrap()
        .success());
    let _ = fs::remove_dir_all(cache.join("probes"));
    let (native, v) = run(&cache);
    assert_eq!(v["built"].as_u64().unwrap() as usize, picked.len(), "{v}");
    let cpu: f64 = v["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["clang_llc_cpu"].as_f64().unwrap())
        .sum();
    let limit = cpu / cores as f64;
    let (warm, v2) = run(&cache);
    assert_eq!(v2["skipped"].as_u64().unwrap() as usize, picked.len());

    println!(
        "batch of {} Debian kernels on {cores} cores (downloads cached for both; scratch {})",
        picked.len(),
        probeforge::pipeline::default_scratch().display()
    );
    println!("  serial kbuild loop      {kbuild:>7.1} s");
    println!(
        "  probeforge build-all    {native:>7.1} s   (a) ratio to kbuild {:.2}  (goal <= 0.5)",
        native / kbuild
    );
    println!(
        "  clang+llc CPU / cores   {limit:>7.1} s   (b) ratio to limit  {:.2}  (goal <= 1.15)",
        native / limit
    );
    println!("  warm re-run             {warm:>7.2} s   (c) (goal < 2 s)");
}
