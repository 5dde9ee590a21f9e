//! Listing every Debian suite (bullseye, bookworm, trixie with -updates, -security,
//! -backports) for amd64 and arm64 from the machine's APT mirror: cold (empty cache) and warm
//! (Release revalidated with 304s, parsed indexes reused). Goal: warm under a second.
//!
//! In the same run, what integrity costs:
//! - the OpenPGP check of each suite's InRelease: the same listing with the catalog's keys
//!   (checked) against one with no keys and `allow_unsigned` (the signature is parsed, nothing
//!   is verified), cold and warm, each from its own empty cache;
//! - the healing digest check of a cache hit (`fetch_verified` streams the entry through
//!   sha256) against a plain read of the same file.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use probeforge::http::{Client, Config};
use probeforge::kernel::Arch;
use probeforge::repo::{Catalog, Lister};

const TARGETS: [&str; 3] = ["debian-bullseye", "debian-bookworm", "debian-trixie"];

/// (cold, warm, kernels) for listing every target with this catalog from an empty cache.
fn cold_and_warm(catalog: &Catalog, cache: &std::path::Path) -> (Duration, Duration, usize) {
    let n = common::net();
    let client = Client::new(Config::new(cache.to_owned()));
    let l = Lister {
        client: &client,
        catalog,
        mirrors: &n.mirrors,
    };
    let run = || {
        let start = Instant::now();
        let mut count = 0;
        for t in TARGETS {
            count += l.list(t, &[Arch::X86_64, Arch::Aarch64]).unwrap().len();
        }
        (start.elapsed(), count)
    };
    let (cold, n1) = run();
    let (warm, n2) = run();
    assert_eq!(n1, n2);
    (cold, warm, n1)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n = common::net();
    let t = common::tmpdir();
    let checked = n.catalog.clone();
    let mut unchecked = n.catalog.clone();
    for target in &mut unchecked.targets {
        target.keys.clear();
        target.allow_unsigned = true;
    }
    let (cold, warm, kernels) = cold_and_warm(&checked, &t.path().join("checked"));
    let (cold_u, warm_u, kernels_u) = cold_and_warm(&unchecked, &t.path().join("unchecked"));
    assert_eq!(kernels, kernels_u);
    println!(
        "list {} targets x 2 arches: {kernels} kernels",
        TARGETS.len()
    );
    println!("  cold {:>7.3} s", cold.as_secs_f64());
    println!(
        "  warm {:>7.3} s   ratio warm/cold {:.3}  (goal: warm < 1 s)",
        warm.as_secs_f64(),
        warm.as_secs_f64() / cold.as_secs_f64()
    );
    println!("signature check of the metadata (checked vs no keys + --allow-unsigned):");
    for (what, with, without) in [("cold", cold, cold_u), ("warm", warm, warm_u)] {
        println!(
            "  {what} {:>7.3} s vs {:>7.3} s   ratio {:.3}   cost {:+.3} s",
            with.as_secs_f64(),
            without.as_secs_f64(),
            with.as_secs_f64() / without.as_secs_f64(),
            with.as_secs_f64() - without.as_secs_f64()
        );
    }

    // The healing check on cache hits: one kernel's header packages, already cached.
    let (k, files) = common::debian_kernel("bookworm", Arch::X86_64);
    let client = &n.client;
    let reps = 15;
    let mut bytes = 0;
    let mut verified = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..reps {
        let s = Instant::now();
        for p in &k.packages {
            client
                .fetch_verified(&p.url, &p.sha256, Some(p.size))
                .unwrap();
        }
        verified.push(s.elapsed());
        let s = Instant::now();
        bytes = 0;
        for f in &files {
            let mut r = std::fs::File::open(f).unwrap();
            bytes += std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        }
        plain.push(s.elapsed());
    }
    let (v, p) = (median(verified), median(plain));
    println!(
        "cache hit of {} ({} packages, {:.1} MB), median of {reps}:",
        k.release,
        files.len(),
        bytes as f64 / 1e6
    );
    println!(
        "  with the digest check {:>7.2} ms vs a plain read {:>7.2} ms   ratio {:.2}   {:.0} MB/s",
        v.as_secs_f64() * 1e3,
        p.as_secs_f64() * 1e3,
        v.as_secs_f64() / p.as_secs_f64(),
        bytes as f64 / 1e6 / v.as_secs_f64()
    );
}
