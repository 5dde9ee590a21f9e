//! The deployment examples, checked by the tools that read them: `systemd-analyze verify` for
//! the systemd units (with the built binary in ExecStart), and the real Kubernetes types
//! (`k8s-openapi`) for the CronJobs, where a field the types do not know is an error (it would
//! be dropped silently by the API server's older clients, or refused by a strict one).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::batch::v1::CronJob;

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let t = common::tmpdir();
    let bin = common::bin();
    let mut units = Vec::new();
    for e in fs::read_dir(examples().join("systemd")).unwrap() {
        let p = e.unwrap().path();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("/usr/local/bin/probeforge") || p.extension().unwrap() == "timer");
        // The unit as installed, with this build's binary where the unit names it.
        let to = t.path().join(p.file_name().unwrap());
        fs::write(
            &to,
            text.replace("/usr/local/bin/probeforge", bin.to_str().unwrap()),
        )
        .unwrap();
        // Every ExecStart is a command line this probeforge accepts: its words, with --help
        // after the subcommand, parse (clap refuses an unknown flag with exit 2).
        for line in text.lines().filter_map(|l| l.strip_prefix("ExecStart=")) {
            let words: Vec<&str> = line.split_whitespace().skip(1).collect();
            let o = Command::new(&bin)
                .args(&words)
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{line}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        units.push(to);
    }
    assert_eq!(
        units.len(),
        3,
        "a service, a one-round service and its timer"
    );
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze (package systemd; see .ci/setup)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // It exits 0 on a setting it ignores (a misspelt signal name): any word from it is a fault.
    assert!(o.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_kubernetes_cronjobs_are_valid_batch_v1_cronjobs() {
    let text = fs::read_to_string(examples().join("kubernetes/cronjob.yaml")).unwrap();
    let mut jobs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let given: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
        let job: CronJob = serde_json::from_value(given.clone())
            .unwrap_or_else(|e| panic!("not a batch/v1 CronJob: {e}\n{given:#}"));
        // The types keep every field they know: what does not come back was not known.
        let back = serde_json::to_value(&job).unwrap();
        assert_eq!(back, given, "a field the Kubernetes types do not know");
        jobs.push(job);
    }
    assert_eq!(jobs.len(), 2, "the shards, then the merge");
    // One pod per shard: N completions, all at once, and the command says K/N of that N.
    let spec = jobs[0]
        .spec
        .as_ref()
        .unwrap()
        .job_template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    let n = spec.completions.unwrap();
    assert_eq!(spec.parallelism, Some(n));
    let cmd = spec.template.spec.as_ref().unwrap().containers[0]
        .command
        .as_ref()
        .unwrap()
        .join(" ");
    assert!(
        cmd.contains(&format!("--shard \"$K/{n}\"")) && cmd.contains("--once"),
        "{cmd}"
    );
    let merge = jobs[1]
        .spec
        .as_ref()
        .unwrap()
        .job_template
        .spec
        .as_ref()
        .unwrap();
    let merge_cmd = merge.template.spec.as_ref().unwrap().containers[0]
        .command
        .as_ref()
        .unwrap()
        .join(" ");
    assert!(merge_cmd.contains("probeforge merge"), "{merge_cmd}");
}
