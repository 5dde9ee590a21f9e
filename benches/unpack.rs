//! Unpacking a real Debian header set and a real kernel-devel RPM: probeforge (selective and
//! everything) against `dpkg-deb -x` and `rpm2cpio | cpio -idm`, measured in the same run,
//! printed as ratios (< 1 means probeforge is faster). Median of 5 runs each.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use probeforge::extract::{self, Limits, Selection};
use probeforge::kernel::Arch;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs each contender `runs` times, interleaved (A B C A B C ...), keeping every tree until
/// the end: deleting 16,000 files makes the next run's writes slower on this disk.
fn race(runs: usize, fs: &mut [&mut dyn FnMut(&Path)]) -> Vec<Duration> {
    let mut keep = Vec::new();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); fs.len()];
    for _ in 0..runs {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = common::tmpdir();
            let root = t.path().join("root");
            let start = Instant::now();
            f(&root);
            times[i].push(start.elapsed());
            keep.push(t);
        }
    }
    times.into_iter().map(median).collect()
}

fn ours(pkgs: &[PathBuf], sel: Selection) -> impl FnMut(&Path) + '_ {
    move |root| {
        extract::unpack_all(pkgs, root, sel, Limits::default()).unwrap();
    }
}

fn main() {
    let runs = 5;
    let (k, files) = common::debian_kernel("bookworm", Arch::X86_64);
    let debs = common::header_files(&k, &files);
    let mut dpkg = |root: &Path| {
        for d in &debs {
            assert!(Command::new("dpkg-deb")
                .arg("-x")
                .arg(d)
                .arg(root)
                .status()
                .unwrap()
                .success());
        }
    };
    let (mut a, mut b) = (
        ours(&debs, Selection::ProbeBuild),
        ours(&debs, Selection::Everything),
    );
    let r = race(runs, &mut [&mut dpkg, &mut a, &mut b]);
    let (dpkg, sel, all) = (r[0], r[1], r[2]);
    println!(
        "unpack Debian header set {} ({} packages)",
        k.release,
        debs.len()
    );
    println!("  dpkg-deb -x             {:>8.3} s", dpkg.as_secs_f64());
    println!(
        "  probeforge (probe set)  {:>8.3} s   ratio {:.2}",
        sel.as_secs_f64(),
        sel.as_secs_f64() / dpkg.as_secs_f64()
    );
    println!(
        "  probeforge (everything) {:>8.3} s   ratio {:.2}",
        all.as_secs_f64(),
        all.as_secs_f64() / dpkg.as_secs_f64()
    );

    let t = common::tmpdir();
    let (rpm, _) = common::build_kernel_devel_rpm(t.path());
    let mut cpio = |root: &Path| {
        std::fs::create_dir_all(root).unwrap();
        let s = Command::new("sh")
            .arg("-c")
            .arg(format!("rpm2cpio '{}' | cpio -idm --quiet", rpm.display()))
            .current_dir(root)
            .status()
            .unwrap();
        assert!(s.success());
    };
    let one = [rpm.clone()];
    let (mut a, mut b) = (
        ours(&one, Selection::ProbeBuild),
        ours(&one, Selection::Everything),
    );
    let r = race(runs, &mut [&mut cpio, &mut a, &mut b]);
    let (cpio, rsel, rall) = (r[0], r[1], r[2]);
    println!(
        "unpack kernel-devel RPM (xz payload, {} bytes)",
        std::fs::metadata(&rpm).unwrap().len()
    );
    println!("  rpm2cpio | cpio -idm    {:>8.3} s", cpio.as_secs_f64());
    println!(
        "  probeforge (probe set)  {:>8.3} s   ratio {:.2}",
        rsel.as_secs_f64(),
        rsel.as_secs_f64() / cpio.as_secs_f64()
    );
    println!(
        "  probeforge (everything) {:>8.3} s   ratio {:.2}",
        rall.as_secs_f64(),
        rall.as_secs_f64() / cpio.as_secs_f64()
    );
}
