//! What watching costs and what it buys.
//!
//! 1. Idle poll vs full listing, per target, on this machine's live Debian mirror: an idle
//!    round is one conditional GET per suite's InRelease (answered 304, no body); a listing
//!    without watch revalidates the same files and parses every index. Bytes received and CPU
//!    time of this process (getrusage), each the median of several runs.
//! 2. Time to driver on a signed loopback mirror: `probeforge watch --interval 2s` runs; a newer
//!    kernel's real packages are added and the index re-signed; the time until its probe is
//!    published, against the round's own build time (a private cache: the probe is compiled).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::gpg::test_key;
use common::server::Server;
use common::watch_mirror::{add_to_pool, catalog, publish_index, two_kernels};
use probeforge::http::{Client, Conditional, Config, Validators};
use probeforge::kernel::Arch;
use probeforge::repo::Lister;

const TARGETS: [&str; 3] = ["debian-bullseye", "debian-bookworm", "debian-trixie"];

/// CPU seconds (user + system) of this process so far.
fn cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

fn idle_vs_listing() {
    let n = common::net();
    println!("idle poll vs listing, per target (x86_64 + aarch64), live mirror:");
    for target in TARGETS {
        let arches = [Arch::X86_64, Arch::Aarch64];
        let urls = probeforge::watch::signed_metadata(&n.catalog, &n.mirrors, target, &arches)
            .unwrap()
            .unwrap();
        // A listing from an empty cache: every byte it needs.
        let t = common::tmpdir();
        let client = Client::new(Config::new(t.path().join("cache")));
        let l = Lister {
            client: &client,
            catalog: &n.catalog,
            mirrors: &n.mirrors,
        };
        let c0 = cpu();
        l.list(target, &arches).unwrap();
        let cold_cpu = cpu() - c0;
        let cold_bytes = dir_bytes(&t.path().join("cache"));
        // Warm listings: what a poller without conditional metadata pays each round.
        let mut warm = Vec::new();
        for _ in 0..3 {
            let c0 = cpu();
            l.list(target, &arches).unwrap();
            warm.push(cpu() - c0);
        }
        // Watch's idle round: validators from a first poll, then 304s.
        // (A suite the mirror does not have answers 404 each round, as watch sees it too.)
        let mut validators: Vec<Validators> = Vec::new();
        let mut present = Vec::new();
        for u in &urls {
            match client.fetch_conditional(u, &Validators::default()) {
                Ok(Conditional::Changed { validators: v, .. }) => {
                    validators.push(v);
                    present.push(u.clone());
                }
                Ok(Conditional::NotModified) => unreachable!("no validators sent"),
                Err(probeforge::http::Error::Status { status: 404, .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        let urls = present;
        let mut idle = Vec::new();
        let mut idle_bytes = 0;
        let mut wall = Vec::new();
        for _ in 0..5 {
            let (c0, w0) = (cpu(), Instant::now());
            for (u, v) in urls.iter().zip(&validators) {
                if let Conditional::Changed { body, .. } = client.fetch_conditional(u, v).unwrap() {
                    idle_bytes += body.len() as u64;
                }
            }
            idle.push(cpu() - c0);
            wall.push(w0.elapsed().as_secs_f64());
        }
        let (idle, warm) = (median(idle), median(warm));
        println!(
            "  {target}: {} indexes; idle round {:.4} s CPU, {:.3} s wall, {idle_bytes} body bytes in 5 rounds; warm listing {:.3} s CPU (ratio idle/warm {:.4}); cold listing {:.2} s CPU, {:.1} MB (ratio idle bytes/cold 0)",
            urls.len(),
            idle,
            median(wall),
            warm,
            idle / warm,
            cold_cpu,
            cold_bytes as f64 / 1e6,
        );
    }
}

fn time_to_driver() {
    let ks = two_kernels();
    let ((newer, newer_files), (older, older_files)) = (&ks[0], &ks[1]);
    let t = common::tmpdir();
    let root = t.path().join("srv/debian");
    add_to_pool(&root, older, older_files);
    let key = test_key(t.path(), "mirror");
    publish_index(&root, "bookworm", &key);
    let server = Server::start(t.path().join("srv"));
    let cat = catalog(t.path(), &key, &[("bw", "bookworm")]);
    let repo = t.path().join("repo");
    let mirror = format!("debian={}/debian", server.base);
    let cache = t.path().join("cache");
    let mut child = Command::new(common::bin())
        .args(["--catalog", cat.to_str().unwrap(), "--mirror", &mirror])
        .args(["watch", "bw", "--repo", repo.to_str().unwrap()])
        .args(["--arch", "x86_64", "--json", "--interval", "2s"])
        .args(common::driver_8_args())
        .env("PROBEFORGE_CACHE", &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let first = next();
    assert_eq!(first["published"].as_array().unwrap().len(), 1, "{first}");
    let idle = next();
    assert_eq!(idle["polls"][0]["status"], "not-modified", "{idle}");
    add_to_pool(&root, newer, newer_files);
    let changed = Instant::now();
    publish_index(&root, "bookworm", &key);
    let done = loop {
        let r = next();
        if !r["published"].as_array().unwrap().is_empty() {
            break r;
        }
    };
    let took = changed.elapsed().as_secs_f64();
    let build = done["seconds"].as_f64().unwrap();
    // SAFETY: a signal to the child this bench spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    println!("time to driver (loopback, --interval 2s, probe compiled, private cache):");
    println!(
        "  index change -> published {took:.1} s; the round that built it {build:.1} s (first round {:.1} s); waiting for the poll {:.1} s; ratio time-to-driver / build {:.2}",
        first["seconds"].as_f64().unwrap(),
        took - build,
        took / build
    );
}

fn main() {
    idle_vs_listing();
    time_to_driver();
}
