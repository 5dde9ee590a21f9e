//! Ubuntu noble's amd64 matrix, both drivers, in one `build-all` run: the wall time against
//! the CPU time of everything it ran divided by the cores (goal <= 1.05: the farm keeps every
//! core busy, downloads and compiler fetches included), and the compilers fetched: once each,
//! however many kernels share them.
//!
//! `BENCH_UBUNTU_ONLY` (a regular expression over releases) runs a slice, e.g. `-generic$` or
//! the newest kernel of each flavour; unset, every listed kernel (~370: hours on 2 cores).
//! The run uses a private cache, so header packages and compilers are downloaded in it.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/drivers.rs"]
mod drivers;

use std::process::Command;
use std::time::{Duration, Instant};

fn children_cpu() -> Duration {
    // SAFETY: getrusage writes only into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    Duration::from_secs((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) as u64)
        + Duration::from_micros((ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) as u64)
}

fn main() {
    let only = std::env::var("BENCH_UBUNTU_ONLY").ok();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = common::tmpdir();
    let cache = t.path().join("cache");
    let repo = t.path().join("repo");
    let dkms = drivers::scap_dkms_0_23_2();
    let mut args: Vec<String> = [
        "--cache-dir",
        cache.to_str().unwrap(),
        "build-all",
        "ubuntu-noble",
        "--arch",
        "x86_64",
        "--driver",
        "ebpf,kmod",
        "--driver-source",
        dkms.to_str().unwrap(),
        "--driver-version",
        "9.1.0+driver",
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    if let Some(o) = &only {
        args.extend(["--only".into(), o.clone()]);
    }
    let cpu0 = children_cpu();
    let start = Instant::now();
    let out = Command::new(common::bin()).args(&args).output().unwrap();
    let wall = start.elapsed();
    let cpu = children_cpu() - cpu0;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let count = |s: &str| {
        v["kernels"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|k| k["status"] == s).count())
    };
    let compilers: Vec<String> = std::fs::read_dir(cache.join("toolchains"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let limit = cpu.as_secs_f64() / cores as f64;
    println!("ubuntu-noble amd64, probe and module, driver 9.1.0+driver ({cores} cores)");
    println!(
        "  slice                   {}",
        only.as_deref().unwrap_or("every kernel")
    );
    println!(
        "  items                   {} built, {} failed, {} unavailable",
        count("built"),
        count("failed"),
        count("unavailable")
    );
    println!("  wall                    {:>8.1} s", wall.as_secs_f64());
    println!("  CPU of everything run   {:>8.1} s", cpu.as_secs_f64());
    println!(
        "  wall / (CPU / cores)    {:>8.2}    (goal <= 1.05)",
        wall.as_secs_f64() / limit
    );
    println!(
        "  compilers fetched       {:>8}    {compilers:?}",
        compilers.len()
    );
}
