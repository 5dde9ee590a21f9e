//! falcosecurity/kernel-crawler's JSON list, read and written, so driverkit pipelines can feed
//! probeforge and be fed by it: `{"<Distro>": [{"kernelversion", "kernelrelease", "target",
//! "headers": [url...]}]}` (one file per architecture).

use std::collections::BTreeMap;

use super::{KernelRecord, PackageRef, ParseError};
use crate::kernel::Arch;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    #[serde(deserialize_with = "string_or_number")]
    pub kernelversion: String,
    pub kernelrelease: String,
    pub target: String,
    #[serde(default)]
    pub headers: Vec<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

use serde::Deserialize;

/// kernel-crawler's distro key for a target id.
fn distro_key(target_id: &str) -> String {
    match target_id {
        "debian" => "Debian".into(),
        "amazonlinux2" => "AmazonLinux2".into(),
        "amazonlinux2023" => "AmazonLinux2023".into(),
        "centos" => "CentOS".into(),
        "fedora" => "Fedora".into(),
        "rocky" => "Rocky".into(),
        "almalinux" => "AlmaLinux".into(),
        "ol" => "OracleLinux".into(),
        // kernel-crawler's keys before it switched to os-release IDs (1dddb06); note the
        // capital R of `BottleRocket`.
        "arch" => "ArchLinux".into(),
        "bottlerocket" => "BottleRocket".into(),
        t if t.starts_with("ubuntu") => "Ubuntu".into(),
        t => t.to_owned(),
    }
}

/// Writes records (of one architecture) as a kernel-crawler list.
pub fn write(records: &[KernelRecord]) -> serde_json::Value {
    let mut by: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for r in records {
        by.entry(distro_key(&r.target_id)).or_default().push(Entry {
            kernelversion: r.kernel_version.clone(),
            kernelrelease: r.release.clone(),
            target: r.target_id.clone(),
            headers: r.packages.iter().map(|p| p.url.clone()).collect(),
        });
    }
    serde_json::to_value(by).expect("serializable")
}

/// The architecture a kernel release names (`.x86_64`, `-amd64`, `-arm64`, ...), if any.
pub fn arch_of_release(release: &str) -> Option<Arch> {
    let last = release.rsplit(['.', '-']).next()?;
    Arch::parse(last)
}

/// Reads a kernel-crawler list (grouped by distro, or a plain array). Digests are unknown
/// (empty): such packages are fetched unverified and their digests recorded.
pub fn read(text: &str, default_arch: Arch) -> Result<Vec<KernelRecord>, ParseError> {
    let v: serde_json::Value = serde_json::from_str(text)?;
    let entries: Vec<Entry> = match v {
        serde_json::Value::Array(_) => serde_json::from_value(v)?,
        serde_json::Value::Object(m) => {
            let mut all = Vec::new();
            for (_, list) in m {
                let mut e: Vec<Entry> = serde_json::from_value(list)?;
                all.append(&mut e);
            }
            all
        }
        _ => return Err(ParseError::Shape("expected an object or an array")),
    };
    Ok(entries
        .into_iter()
        .map(|e| KernelRecord {
            // A kernel-crawler list carries no signatures and no digests.
            unsigned_metadata: true,
            target: e.target.clone(),
            target_id: e.target.clone(),
            arch: arch_of_release(&e.kernelrelease).unwrap_or(default_arch),
            release: e.kernelrelease,
            kernel_version: e.kernelversion,
            origin: "kernel-crawler".into(),
            packages: e
                .headers
                .iter()
                .map(|u| PackageRef {
                    name: u.rsplit('/').next().unwrap_or(u).to_owned(),
                    version: String::new(),
                    url: u.clone(),
                    size: 0,
                    sha256: String::new(),
                })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_real_shapes() {
        let text = r#"{"AmazonLinux2": [{"kernelversion": 1, "kernelrelease": "5.10.210-201.852.amzn2.x86_64", "target": "amazonlinux2", "headers": ["http://x/kernel-devel.rpm"]}],
                       "Ubuntu": [{"kernelversion": "101", "kernelrelease": "5.15.0-91-generic", "target": "ubuntu-generic", "headers": ["http://x/a.deb", "http://x/b.deb"]}]}"#;
        let r = read(text, Arch::X86_64).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].kernel_version, "1");
        assert_eq!(r[0].arch, Arch::X86_64);
        assert_eq!(r[1].packages.len(), 2);
        let back = write(&r);
        assert_eq!(back["Ubuntu"][0]["kernelversion"], "101");
        assert_eq!(
            back["AmazonLinux2"][0]["headers"][0],
            "http://x/kernel-devel.rpm"
        );
        assert_eq!(arch_of_release("6.1.0-50-arm64"), Some(Arch::Aarch64));
        assert_eq!(distro_key("arch"), "ArchLinux");
        assert_eq!(distro_key("bottlerocket"), "BottleRocket");
    }
}
