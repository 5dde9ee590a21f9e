//! Beyond one machine, measured. (1) The balance of N shards over the real Debian list
//! (bullseye, bookworm, trixie with their suites, amd64 and arm64, probe and module): the
//! heaviest shard's estimated cost over the mean, dealt by key hash and by cost, for N = 2 to
//! 16. (2) Wall time of 2 shards run side by side (one job each) against one run of the same
//! kernels (two jobs), on this machine, each with an empty compile cache: what a split costs
//! when the runners share nothing but the list; then `probeforge merge` of the two, checked
//! equal, byte for byte, to the one run.
//!
//! `cargo bench --bench shard` (~4 min on 2 cores). `SHARD_BENCH_KERNELS` (default 6) sets how
//! many bookworm amd64 kernels part (2) builds.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use probeforge::kernel::Arch;

fn probeforge(cache: &Path) -> Command {
    let mut c = Command::new(common::bin());
    c.env("PROBEFORGE_CACHE", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

fn json(c: &mut Command) -> serde_json::Value {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn plan(list: &[&str], extra: &[&str], repo: &Path, cache: &Path) -> serde_json::Value {
    let mut c = probeforge(cache);
    c.arg("build-all").args(list).arg("--repo").arg(repo);
    c.args(common::driver_8_args())
        .args(extra)
        .args(["--plan", "--json"]);
    json(&mut c)
}

fn main() {
    let t = common::tmpdir();
    let empty = t.path().join("empty");
    let cache = common::cache_dir();

    // (1) Balance over the whole list.
    let started = Instant::now();
    let full = plan(
        &["debian-bullseye", "debian-bookworm", "debian-trixie"],
        &["--driver", "ebpf,kmod"],
        &empty,
        &cache,
    );
    let listed = started.elapsed().as_secs_f64();
    let plan_file = t.path().join("plan.json");
    std::fs::write(&plan_file, serde_json::to_vec(&full).unwrap()).unwrap();
    println!(
        "list: {} kernels, {} items (probe and module), ~{:.0} s of CPU estimated; planned in {listed:.1} s",
        full["kernels"].as_array().unwrap().len(),
        full["build"],
        full["cost_seconds"].as_f64().unwrap()
    );
    println!("{:>4} {:>16} {:>16}", "N", "hash max/mean", "cost max/mean");
    for n in [2, 3, 4, 8, 16] {
        let mut row = Vec::new();
        for balance in ["hash", "cost"] {
            let shard = format!("1/{n}");
            let p = plan(
                &["--from", plan_file.to_str().unwrap()],
                &[
                    "--driver",
                    "ebpf,kmod",
                    "--shard",
                    &shard,
                    "--balance",
                    balance,
                ],
                &empty,
                &cache,
            );
            row.push(p["max_over_mean"].as_f64().unwrap());
        }
        println!("{n:>4} {:>16.3} {:>16.3}", row[0], row[1]);
    }

    // (2) Two shards side by side against one run: the newest bookworm amd64 kernels.
    let want: usize = std::env::var("SHARD_BENCH_KERNELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut kernels: Vec<_> = common::lister()
        .list("debian-bookworm", &[Arch::X86_64])
        .expect("list bookworm")
        .into_iter()
        .filter(|k| k.origin.starts_with("bookworm") && k.release.starts_with("6.1."))
        .filter(|k| !k.release.contains("-rt-"))
        .collect();
    kernels.sort_by(|a, b| {
        probeforge::repo::apt::compare_versions(&b.packages[0].version, &a.packages[0].version)
            .then(a.release.cmp(&b.release))
    });
    let kernels: Vec<_> = kernels
        .into_iter()
        .filter(|k| common::lister().fetch(k).is_ok())
        .take(want)
        .collect();
    assert_eq!(kernels.len(), want, "{want} bookworm kernels downloadable");
    let only = format!(
        "^({})$",
        kernels
            .iter()
            .map(|k| regex::escape(&k.release))
            .collect::<Vec<_>>()
            .join("|")
    );
    let small = plan(
        &["debian-bookworm"],
        &["--arch", "x86_64", "--only", &only],
        &empty,
        &cache,
    );
    let small_file = t.path().join("small.json");
    std::fs::write(&small_file, serde_json::to_vec(&small).unwrap()).unwrap();
    let from = ["--from", small_file.to_str().unwrap()];
    let run = |repo: &Path, cache: &Path, extra: &[&str]| -> Child {
        let mut c = probeforge(cache);
        c.arg("build-all").args(from).arg("--repo").arg(repo);
        c.args(common::driver_8_args()).args(extra).arg("--json");
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let done = |c: Child| {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["failed"], 0, "{v}");
        v["kernels"].as_array().unwrap().len()
    };
    let one = t.path().join("one");
    let started = Instant::now();
    let n = done(run(
        &one,
        &common::fresh_cache(&t.path().join("c0")),
        &["--jobs", "2"],
    ));
    let single = started.elapsed().as_secs_f64();
    assert_eq!(n, want);
    let shards: Vec<PathBuf> = (1..=2).map(|k| t.path().join(format!("s{k}"))).collect();
    let started = Instant::now();
    let children: Vec<Child> = (1..=2)
        .map(|k| {
            let c = common::fresh_cache(&t.path().join(format!("c{k}")));
            let spec = format!("{k}/2");
            run(
                &shards[k - 1],
                &c,
                &["--jobs", "1", "--shard", &spec, "--balance", "cost"],
            )
        })
        .collect();
    let per: Vec<usize> = children.into_iter().map(done).collect();
    let split = started.elapsed().as_secs_f64();
    assert_eq!(per.iter().sum::<usize>(), want);
    let merged = t.path().join("merged");
    let started = Instant::now();
    let mut m = probeforge(&cache);
    m.arg("merge").arg(&merged).args(&shards).arg("--json");
    json(&mut m);
    let merge = started.elapsed().as_secs_f64();
    assert_eq!(
        common::tree(&merged),
        common::tree(&one),
        "merged shards equal the one run"
    );
    println!(
        "{want} probes: one run (--jobs 2) {single:.1} s; 2 shards side by side (--jobs 1 each, {per:?} probes) {split:.1} s; ratio {:.2}; merge {merge:.2} s, byte-identical to the one run",
        split / single
    );
}
