//! The driver matrix: every driver source of `tests/common/drivers.rs` (GitHub archives
//! 3.0.1-7.0.0, Debian's orig tarball 8.0.0, dkms 0.23.2 = 9.1.0, the 2022 dkms driver) on the
//! newest Debian kernel of each line (5.10, 6.1, 6.12, 7.x), amd64 and arm64, built in-process
//! two at a time. Prints each outcome (patches applied, or the error's first line) with clang
//! and llc CPU seconds and the wall time of the whole build (unpack, configure, patch, compile,
//! validate), and every cell where `probeforge drivers` says otherwise. The old drivers' patched
//! cells (3.0.1 and 4.0.0 on 6.12 and 7.x, both arches) are in it; the tests build one arch.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/drivers.rs"]
mod drivers;

use std::time::Instant;

use probeforge::kernel::Arch;
use probeforge::releases::Outcome;
use rayon::prelude::*;

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

fn main() {
    let tc = probeforge::toolchain::Toolchain::find(None, None).expect("clang and llc");
    let patches = probeforge::patch::Catalog::embedded();
    let drivers = drivers::matrix_drivers();
    let mut kernels = Vec::new();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        for line in drivers::LINES {
            let (k, files) = drivers::kernel_line(line, arch);
            kernels.push((
                line,
                arch,
                k.release.clone(),
                common::header_files(&k, &files),
            ));
        }
    }
    let t = common::tmpdir();
    let cells: Vec<_> = kernels
        .iter()
        .flat_map(|k| drivers.iter().map(move |d| (k, d)))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let results: Vec<_> = pool.install(|| {
        cells
            .par_iter()
            .enumerate()
            .map(|(i, ((line, arch, release, headers), d))| {
                let req = probeforge::pipeline::Request {
                    headers: headers.clone(),
                    kernel_release: None,
                    driver_source: d.path.clone(),
                    driver_version: None,
                    target_id: None,
                    kernel_version: None,
                    arch: Some(*arch),
                    out_dir: t.path().join(i.to_string()),
                    scratch: None,
                    driver_digest: None,
                    header_digests: Vec::new(),
                };
                let w = Instant::now();
                let r = probeforge::pipeline::build_probe(&req, &tc, &patches);
                let cell = match &r {
                    Ok((o, _)) => Outcome::built(&o.patches),
                    Err(e) => Outcome::Cannot(chain(e)),
                };
                (
                    *line,
                    *arch,
                    release.clone(),
                    d,
                    r.map(|(o, _)| o),
                    cell,
                    w.elapsed(),
                )
            })
            .collect()
    });
    let wall = started.elapsed();
    let table = probeforge::releases::Table::embedded();
    let (mut cpu, mut probe_wall, mut built, mut differ) = (0.0, 0.0, 0, Vec::new());
    println!(
        "{:<30} {:<5} {:<7} {:<34} {:>7} {:>7}  outcome",
        "driver", "line", "arch", "kernel", "cpu s", "wall s"
    );
    for (line, arch, release, d, r, cell, w) in &results {
        let (secs, what) = match r {
            Ok(o) => {
                built += 1;
                let c =
                    o.timing.probe.clang_cpu.as_secs_f64() + o.timing.probe.llc_cpu.as_secs_f64();
                cpu += c;
                probe_wall += w.as_secs_f64();
                (
                    format!("{c:.1}"),
                    format!("{} as {}", cell, o.driver_version),
                )
            }
            Err(_) => ("-".to_owned(), cell.to_string()),
        };
        println!(
            "{:<30} {:<5} {:<7} {:<34} {:>7} {:>7.1}  {what}",
            d.version,
            line,
            arch.uname_m(),
            release,
            secs,
            w.as_secs_f64()
        );
        match table.expected(d.version, line, *arch) {
            Some(e) if e.same_kind(cell) => {}
            e => differ.push(format!(
                "{} {line} {}: built {cell}, table says {}",
                d.version,
                arch.uname_m(),
                e.map_or("nothing".to_owned(), |e| e.to_string())
            )),
        }
    }
    println!(
        "\n{} cells, {built} probes built in {:.0} s wall: per probe {:.1} s clang+llc CPU, {:.1} s \
         build wall (2 jobs), {:.1} s of the run's wall",
        results.len(),
        wall.as_secs_f64(),
        cpu / built.max(1) as f64,
        probe_wall / built.max(1) as f64,
        wall.as_secs_f64() / built.max(1) as f64
    );
    for d in &differ {
        println!("DIFFERS {d}");
    }
}
