//! Listing every Debian suite (bullseye, bookworm, trixie with -updates, -security,
//! -backports) for amd64 and arm64 from the machine's APT mirror: cold (empty cache) and warm
//! (Release revalidated with 304s, parsed indexes reused). Goal: warm under a second.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use probeforge::http::{Client, Config};
use probeforge::kernel::Arch;
use probeforge::repo::Lister;

fn main() {
    let n = common::net();
    let t = common::tmpdir();
    let client = Client::new(Config::new(t.path().join("cache")));
    let l = Lister {
        client: &client,
        catalog: &n.catalog,
        mirrors: &n.mirrors,
    };
    let targets = ["debian-bullseye", "debian-bookworm", "debian-trixie"];
    let run = || {
        let start = Instant::now();
        let mut count = 0;
        for t in targets {
            count += l.list(t, &[Arch::X86_64, Arch::Aarch64]).unwrap().len();
        }
        (start.elapsed(), count)
    };
    let (cold, n1) = run();
    let (warm, n2) = run();
    assert_eq!(n1, n2);
    println!("list {} suites x 2 arches: {n1} kernels", targets.len());
    println!("  cold {:>7.3} s", cold.as_secs_f64());
    println!(
        "  warm {:>7.3} s   ratio warm/cold {:.3}  (goal: warm < 1 s)",
        warm.as_secs_f64(),
        warm.as_secs_f64() / cold.as_secs_f64()
    );
}
