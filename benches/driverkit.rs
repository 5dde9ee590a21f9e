//! A grid of driverkit configs against `build-all` over the same kernels: wall time per probe
//! of each, each with an empty compile cache (downloads and listings cached), and the ratio;
//! the two repositories checked equal, byte for byte.
//!
//! `cargo bench --bench driverkit`. `DRIVERKIT_BENCH_KERNELS` (default 4) sets how many
//! bookworm amd64 kernels (plain flavour, newest first) both build.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use probeforge::driverkit;

const V8: &str = "8.0.0+driver";

/// The test cache's downloads and metadata (hard links), without its compile caches: every
/// probe is compiled.
fn no_compile_cache(at: &Path) -> PathBuf {
    assert!(Command::new("cp")
        .arg("-al")
        .arg(common::cache_dir())
        .arg(at)
        .status()
        .unwrap()
        .success());
    for d in ["probes", "modules"] {
        let _ = std::fs::remove_dir_all(at.join(d));
    }
    at.to_owned()
}

fn run(cache: &Path, args: &[String]) -> (serde_json::Value, f64) {
    let started = Instant::now();
    let o = Command::new(common::bin())
        .env("PROBEFORGE_CACHE", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(args)
        .output()
        .unwrap();
    let s = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (serde_json::from_slice(&o.stdout).unwrap(), s)
}

fn tree(repo: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = walkdir::WalkDir::new(repo.join(V8))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "o"))
        .map(|e| {
            let rel = e.path().strip_prefix(repo).unwrap().display().to_string();
            (rel, common::sha256_file(e.path()))
        })
        .collect();
    v.sort();
    v
}

fn main() {
    let n: usize = std::env::var("DRIVERKIT_BENCH_KERNELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let t = common::tmpdir();
    common::libs_0_20_0();
    // The grid, written by probeforge itself from the signed listing.
    let all = t.path().join("all");
    let (listed, _) = run(
        &common::cache_dir(),
        &[
            "list-kernels",
            "debian-bookworm",
            "--arch",
            "x86_64",
            "--format",
            "driverkit",
            "-o",
            &all.display().to_string(),
            "--driver-version",
            V8,
            "--json",
        ]
        .map(String::from),
    );
    let mut plain: Vec<(driverkit::Config, String)> = walkdir::WalkDir::new(&all)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let c = driverkit::parse(&std::fs::read(e.path()).unwrap())
                .unwrap()
                .config;
            let rel = e.path().strip_prefix(&all).unwrap().display().to_string();
            (c, rel)
        })
        .filter(|(c, _)| {
            c.kernelrelease.ends_with("-amd64")
                && c.kernelrelease.starts_with("6.1.")
                && !c.kernelrelease.contains("-cloud-")
                && !c.kernelrelease.contains("-rt-")
        })
        .collect();
    plain.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.0.kernelrelease, &a.0.kernelrelease)
    });
    plain.truncate(n);
    let grid = t.path().join("grid");
    for (c, rel) in &plain {
        let mut c = c.clone();
        c.output.module = None;
        let p = grid.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, driverkit::to_yaml(&c)).unwrap();
    }
    let only = format!(
        "^({})$",
        plain
            .iter()
            .map(|(c, _)| regex::escape(&c.kernelrelease))
            .collect::<Vec<_>>()
            .join("|")
    );
    println!(
        "{} bookworm amd64 kernels (of {} configs written): {}",
        plain.len(),
        listed["configs"].as_array().map_or(0, |a| a.len()),
        plain
            .iter()
            .map(|(c, _)| c.kernelrelease.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let r1 = t.path().join("build-all");
    let c1 = no_compile_cache(&t.path().join("cache-1"));
    let mut a1: Vec<String> = [
        "build-all",
        "debian-bookworm",
        "--arch",
        "x86_64",
        "--only",
        &only,
        "--driver-version",
        V8,
        "--json",
        "--repo",
    ]
    .map(String::from)
    .to_vec();
    a1.push(r1.display().to_string());
    let (o1, s1) = run(&c1, &a1);

    let r2 = t.path().join("grid-repo");
    let c2 = no_compile_cache(&t.path().join("cache-2"));
    let a2: Vec<String> = vec![
        "build-all".into(),
        "--driverkit-configs".into(),
        grid.display().to_string(),
        "--json".into(),
        "--repo".into(),
        r2.display().to_string(),
    ];
    let (o2, s2) = run(&c2, &a2);

    assert_eq!(o1["built"], plain.len(), "{o1}");
    assert_eq!(o2["built"], plain.len(), "{o2}");
    assert_eq!(tree(&r1), tree(&r2), "the same bytes");
    let per = |s: f64| s / plain.len() as f64;
    println!("{:<28} {:>8} {:>10}", "", "wall s", "s / probe");
    println!(
        "{:<28} {:>8.1} {:>10.1}",
        "build-all (listing)",
        s1,
        per(s1)
    );
    println!(
        "{:<28} {:>8.1} {:>10.1}",
        "build-all --driverkit-configs",
        s2,
        per(s2)
    );
    println!(
        "grid / build-all: {:.2} (the same {} probes, byte for byte)",
        s2 / s1,
        plain.len()
    );
}
