//! Beyond one machine: `build-all --shard K/N` over a real Debian list partitions it exactly,
//! `--plan --json` is a list every shard can read back, `probeforge merge` joins the shards'
//! repositories into what one run writes, byte for byte, refuses a conflict naming it, and
//! shards publishing to one GitHub release at once lose nothing and upload nothing twice.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use probeforge::kernel::Arch;

const TARGETS: [&str; 3] = ["debian-bullseye", "debian-bookworm", "debian-trixie"];

/// One kernel of each Debian line, both arches: bullseye amd64, bookworm arm64, trixie amd64.
fn selection() -> String {
    let picks = [
        debian_kernel("bullseye", Arch::X86_64).0,
        debian_kernel("bookworm", Arch::Aarch64).0,
        debian_kernel("trixie", Arch::X86_64).0,
    ];
    let alts: Vec<String> = picks.iter().map(|k| regex::escape(&k.release)).collect();
    format!("^({})$", alts.join("|"))
}

fn probeforge(args: &[String]) -> (i32, serde_json::Value, String) {
    let o = Command::new(bin())
        .args(args)
        .env("PROBEFORGE_CACHE", cache_dir())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn args(list: &[&str], repo: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["build-all".to_owned()];
    a.extend(list.iter().map(|s| s.to_string()));
    a.extend(["--repo".into(), repo.display().to_string()]);
    a.extend(driver_8_args());
    a.extend(extra.iter().map(|s| s.to_string()));
    a.push("--json".into());
    a
}

fn keys(plan: &serde_json::Value) -> Vec<String> {
    plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn shards_partition_a_real_debian_list_exactly() {
    let t = tmpdir();
    let empty = t.path().join("empty");
    // Every kernel of three Debian releases, both arches, probe and module: listed once.
    let (code, full, err) = probeforge(&args(
        &TARGETS,
        &empty,
        &["--driver", "ebpf,kmod", "--plan"],
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(full["format"], "probeforge-plan-1");
    let all = keys(&full);
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an item listed twice");
    assert!(all.len() > 200, "{} items: the archive shrank?", all.len());
    // Each module's compiler comes from its own release's indexes (or a pinned one there).
    for i in full["items"].as_array().unwrap() {
        let want = match i["driver"].as_str() {
            Some("kmod") => serde_json::Value::from(format!(
                "resolved from {}'s signed indexes",
                i["target"].as_str().unwrap()
            )),
            _ => serde_json::Value::Null,
        };
        assert_eq!(i["compiler"], want, "{i}");
    }
    assert_eq!(full["build"].as_u64().unwrap() as usize, all.len());
    assert!(full["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["cost_seconds"].as_f64().unwrap() >= 11.0));
    let plan = t.path().join("plan.json");
    fs::write(&plan, serde_json::to_vec(&full).unwrap()).unwrap();
    let from = ["--from", plan.to_str().unwrap()];
    for n in [2, 3] {
        for balance in ["hash", "cost"] {
            let mut seen: Vec<String> = Vec::new();
            let mut costs = Vec::new();
            for k in 1..=n {
                let shard = format!("{k}/{n}");
                let extra = [
                    "--driver",
                    "ebpf,kmod",
                    "--plan",
                    "--shard",
                    &shard,
                    "--balance",
                    balance,
                ];
                let (code, p, err) = probeforge(&args(&from, &empty, &extra));
                assert_eq!(code, 0, "{shard} {balance}: {err}");
                assert_eq!(p["shard"], shard.as_str());
                assert!(p["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["shard"] == k));
                costs.push(p["cost_seconds"].as_f64().unwrap());
                seen.extend(keys(&p));
                // Every shard reports the same balance of the whole list.
                assert_eq!(p["shards"].as_array().unwrap().len(), n);
            }
            seen.sort();
            let mut want = all.clone();
            want.sort();
            assert_eq!(
                seen, want,
                "{n} shards by {balance}: every item exactly once"
            );
            let mean = costs.iter().sum::<f64>() / n as f64;
            let max = costs.iter().cloned().fold(0.0, f64::max);
            let limit = if balance == "cost" { 1.01 } else { 1.25 };
            assert!(max / mean < limit, "{n} by {balance}: {costs:?}");
        }
    }
    // Listing again instead of reading the plan: the same shard, the same items.
    let (code, listed, err) = probeforge(&args(
        &TARGETS,
        &empty,
        &["--driver", "ebpf,kmod", "--plan", "--shard", "2/3"],
    ));
    assert_eq!(code, 0, "{err}");
    let (_, read, _) = probeforge(&args(
        &from,
        &empty,
        &["--driver", "ebpf,kmod", "--plan", "--shard", "2/3"],
    ));
    assert_eq!(keys(&listed), keys(&read));
    // A shard spec that cannot be is a usage error.
    let (code, _, err) = probeforge(&args(&from, &empty, &["--plan", "--shard", "4/3"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("4/3"), "{err}");
}

#[test]
fn merged_shards_equal_one_run_byte_for_byte_and_a_conflict_is_named() {
    let only = selection();
    let t = tmpdir();
    let one = t.path().join("one");
    let (code, v, err) = probeforge(&args(&TARGETS, &one, &["--only", &only]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["kernels"].as_array().unwrap().len(), 3, "{v}");
    let whole = tree(&one);
    assert!(whole.iter().any(|(p, _)| p == "index.json"));
    // The list once, as the fan-out's first job makes it.
    let (code, plan, err) = probeforge(&args(
        &TARGETS,
        &t.path().join("none"),
        &["--only", &only, "--plan"],
    ));
    assert_eq!(code, 0, "{err}");
    let plan_file = t.path().join("plan.json");
    fs::write(&plan_file, serde_json::to_vec(&plan).unwrap()).unwrap();
    let from = ["--from", plan_file.to_str().unwrap()];
    let mut first_shard = PathBuf::new();
    for n in [2, 3] {
        let mut shards = Vec::new();
        let mut built = 0;
        for k in 1..=n {
            let dir = t.path().join(format!("s{n}-{k}"));
            let (code, v, err) = probeforge(&args(
                &from,
                &dir,
                &["--only", &only, "--shard", &format!("{k}/{n}")],
            ));
            assert_eq!(code, 0, "{err}");
            built += v["kernels"].as_array().unwrap().len();
            // A shard's repository is complete on its own, even when it got nothing.
            assert!(dir.join("index.json").is_file());
            let (code, _, err) =
                probeforge(&["check".into(), "--repo".into(), dir.display().to_string()]);
            assert_eq!(code, 0, "{err}");
            shards.push(dir);
        }
        assert_eq!(built, 3, "{n} shards built every kernel once");
        let out = t.path().join(format!("merged-{n}"));
        let mut m = vec!["merge".to_owned(), out.display().to_string()];
        m.extend(shards.iter().map(|s| s.display().to_string()));
        m.push("--json".into());
        let (code, r, err) = probeforge(&m);
        assert_eq!(code, 0, "{err}");
        assert_eq!(r["new"], 3, "{r}");
        assert_eq!(tree(&out), whole, "{n} shards merged against one run");
        // Merging again changes nothing.
        let (code, r, _) = probeforge(&m);
        assert_eq!(
            (code, r["new"].as_u64(), r["unchanged"].as_u64()),
            (0, Some(0), Some(3))
        );
        assert_eq!(tree(&out), whole);
        first_shard = shards.into_iter().find(|s| tree(s).len() > 3).unwrap();
    }
    // A repository with other bytes under a name the shard has: refused, both named, and
    // nothing written.
    let shard = probeforge::publish::LocalRepo::new(&first_shard);
    let mut meta = shard.entries().unwrap().remove(0);
    let other = b"not the same probe".to_vec();
    meta.sha256 = probeforge::base::sha256(&other);
    meta.size = other.len() as u64;
    let forged = t.path().join("forged");
    probeforge::publish::LocalRepo::new(&forged)
        .publish(&meta, &other)
        .unwrap();
    let out = t.path().join("conflicted");
    let (code, _, err) = probeforge(&[
        "merge".into(),
        out.display().to_string(),
        first_shard.display().to_string(),
        forged.display().to_string(),
    ]);
    assert_eq!(code, 1, "{err}");
    for named in [meta.file.as_str(), "forged", first_shard.to_str().unwrap()] {
        assert!(err.contains(named), "{named} in: {err}");
    }
    assert!(!out.exists(), "a refused merge writes nothing");
}

#[test]
fn shards_publishing_to_one_github_release_at_once_lose_nothing() {
    let gh = common::github::GitHub::start("falco", "probes", "s3cret");
    let only = selection();
    let t = tmpdir();
    let spawn = |k: u32| {
        let mut a = args(
            &TARGETS,
            &t.path().join("unused"),
            &["--only", &only, "--shard", &format!("{k}/2")],
        );
        let repo = a.iter().position(|x| x == "--repo").unwrap();
        a[repo + 1] = "github:falco/probes".into();
        a.extend([
            "--output".into(),
            t.path().join(format!("stage-{k}")).display().to_string(),
        ]);
        Command::new(bin())
            .args(&a)
            .env("PROBEFORGE_CACHE", cache_dir())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("PROBEFORGE_GITHUB_API", &gh.base)
            .env("GITHUB_TOKEN", "s3cret")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(1), spawn(2));
    for c in [a, b] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let s = gh.state.lock().unwrap();
    let (_, assets) = &s.releases["8.0.0+driver"];
    assert_eq!(assets.len(), 3, "{:?}", assets.keys());
    for (name, bytes) in assets {
        let (arch, file) = ["x86_64", "aarch64"]
            .iter()
            .find_map(|a| Some((*a, name.strip_prefix(&format!("{a}_"))?)))
            .unwrap();
        let staged: Vec<PathBuf> = (1..=2)
            .map(|k| {
                t.path()
                    .join(format!("stage-{k}/8.0.0+driver/{arch}/{file}"))
            })
            .filter(|p| p.is_file())
            .collect();
        assert_eq!(staged.len(), 1, "{name} built by exactly one shard");
        assert_eq!(&fs::read(&staged[0]).unwrap(), bytes, "{name}");
    }
}

/// The example workflows call probeforge with flags it has: every `--flag` of a `probeforge
/// <command>` line (and its continuation lines) is in that command's `--help`.
#[test]
fn example_workflows_use_only_flags_probeforge_has() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github-actions");
    let mut checked = 0;
    for f in fs::read_dir(&dir).unwrap().flatten() {
        let text = fs::read_to_string(f.path()).unwrap();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(at) = line
                .find("probeforge ")
                .filter(|_| line.contains("/probeforge "))
            else {
                continue;
            };
            let mut cmd = line[at..].to_owned();
            while cmd.trim_end().ends_with('\\') {
                cmd = format!(
                    "{} {}",
                    cmd.trim_end().trim_end_matches('\\'),
                    lines.next().unwrap()
                );
            }
            let words: Vec<&str> = cmd.split_whitespace().collect();
            let sub = words[1];
            let o = Command::new(bin()).args([sub, "--help"]).output().unwrap();
            assert!(
                o.status.success(),
                "{}: `{sub}` is no command",
                f.path().display()
            );
            let help = String::from_utf8_lossy(&o.stdout).into_owned();
            for w in words.iter().filter(|w| w.starts_with("--")) {
                let flag = w.split('=').next().unwrap();
                assert!(
                    help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                    "{}: `probeforge {sub}` has no {flag}",
                    f.path().display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 15, "{checked} flags checked");
}
