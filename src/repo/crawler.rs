//! falcosecurity/kernel-crawler's JSON list, read and written, so driverkit pipelines can feed
//! probeforge and be fed by it: `{"<Distro>": [{"kernelversion", "kernelrelease", "target",
//! "headers": [url...]}]}` (one file per architecture). Kernels built from their source (talos,
//! minikube, flatcar) carry no headers but `kernelconfigdata`, their `.config` in base64; their
//! source is kernel.org's tarball of the config's kernel version (see [`super::kernel_org`]).

use std::collections::BTreeMap;

use base64::Engine;

use super::{kernel_org, KernelRecord, PackageRef, ParseError};
use crate::kernel::Arch;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    #[serde(deserialize_with = "string_or_number")]
    pub kernelversion: String,
    pub kernelrelease: String,
    pub target: String,
    #[serde(
        default,
        deserialize_with = "list_or_null",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernelconfigdata: Option<String>,
}

fn list_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

use serde::Deserialize;

/// kernel-crawler's distro key for a target id: its os-release names (since 1dddb06), one
/// `opensuse` for Leap, Tumbleweed and SLES (it has no other), one `ubuntu` for every flavour;
/// every other target id is its own key (`debian`, `amazonlinux2`, `centos`, `ol`, `arch`,
/// `bottlerocket`, `talos`, `minikube`, `flatcar`, ...). Reading takes any key.
fn distro_key(target_id: &str) -> String {
    match target_id {
        "opensuse-leap" | "opensuse-tumbleweed" | "sles" => "opensuse".into(),
        t if t.starts_with("ubuntu") => "ubuntu".into(),
        t => t.to_owned(),
    }
}

/// Writes records (of one architecture) as a kernel-crawler list.
pub fn write(records: &[KernelRecord]) -> serde_json::Value {
    let mut by: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for r in records {
        let config = r.packages.iter().find(|p| p.name == kernel_org::CONFIG);
        let kernelconfigdata = config
            .and_then(|p| kernel_org::data_url_bytes(&p.url))
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b));
        let headers = match r.from_source() {
            // The source tarball is found again from the config's kernel version.
            true => Vec::new(),
            false => r.packages.iter().map(|p| p.url.clone()).collect(),
        };
        by.entry(distro_key(&r.target_id)).or_default().push(Entry {
            kernelversion: r.kernel_version.clone(),
            // kernel-crawler's name: on Debian the package version and flavour, on Flatcar
            // the Flatcar release.
            kernelrelease: r.file_release(),
            target: r.target_id.clone(),
            headers,
            kernelconfigdata,
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
    entries
        .into_iter()
        .map(|e| {
            if let Some(data) = &e.kernelconfigdata {
                return from_source(&e, data, default_arch);
            }
            let packages: Vec<PackageRef> = e.headers.iter().map(|u| package_of_url(u)).collect();
            Ok(KernelRecord {
                // A kernel-crawler list carries no signatures and no digests.
                unsigned_metadata: true,
                target: e.target.clone(),
                target_id: e.target.clone(),
                arch: arch_of_release(&e.kernelrelease).unwrap_or(default_arch),
                release: uname_r(&e, &packages).unwrap_or(e.kernelrelease),
                kernel_version: e.kernelversion,
                origin: "kernel-crawler".into(),
                packages,
            })
        })
        .collect()
}

/// A kernel built from its source: kernel-crawler's `kernelconfigdata` entries.
fn from_source(e: &Entry, data: &str, default_arch: Arch) -> Result<KernelRecord, ParseError> {
    let config = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|err| {
            ParseError::Entry(format!(
                "{} kernel `{}`: kernelconfigdata is not base64 ({err})",
                e.target, e.kernelrelease
            ))
        })?;
    let mut k = kernel_org::source_record(
        &e.target,
        &e.kernelrelease,
        &e.kernelversion,
        &config,
        default_arch,
    )
    .map_err(ParseError::Entry)?;
    k.origin = "kernel-crawler".into();
    Ok(k)
}

/// A package as its URL names it: a `.deb`'s file name is `<name>_<version>_<arch>.deb`.
fn package_of_url(url: &str) -> PackageRef {
    let file = url.rsplit('/').next().unwrap_or(url);
    let decoded = file
        .replace("%2B", "+")
        .replace("%2b", "+")
        .replace("%7E", "~")
        .replace("%7e", "~")
        .replace("%3A", ":")
        .replace("%3a", ":");
    let parts: Vec<&str> = decoded
        .strip_suffix(".deb")
        .map(|s| s.split('_').collect())
        .unwrap_or_default();
    let (name, version) = match parts[..] {
        [name, version, _arch] => (name.to_owned(), version.to_owned()),
        _ => (file.to_owned(), String::new()),
    };
    PackageRef {
        name,
        version,
        url: url.to_owned(),
        size: 0,
        sha256: String::new(),
    }
}

/// A Debian entry's `uname -r`: kernel-crawler names Debian kernels by package version and
/// flavour (`6.1.170-3-amd64`); the kernel is the headers package of that version whose name
/// gives that flavour (`linux-headers-6.1.0-47-amd64`).
fn uname_r(e: &Entry, packages: &[PackageRef]) -> Option<String> {
    if e.target != "debian" {
        return None;
    }
    packages.iter().find_map(|p| {
        let release = p.name.strip_prefix("linux-headers-")?;
        (crate::loader::debian_file_release(release, &p.version).as_deref()
            == Some(e.kernelrelease.as_str()))
        .then(|| release.to_owned())
    })
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
        assert_eq!(back["ubuntu"][0]["kernelversion"], "101");
        assert_eq!(
            back["amazonlinux2"][0]["headers"][0],
            "http://x/kernel-devel.rpm"
        );
        assert_eq!(arch_of_release("6.1.0-50-arm64"), Some(Arch::Aarch64));
        assert_eq!(distro_key("arch"), "arch");
        assert_eq!(distro_key("ubuntu-aws"), "ubuntu");
    }

    /// kernel-crawler names Debian kernels by package version and flavour, as Falco's
    /// repository does; read back, the kernel is its `uname -r` again.
    #[test]
    fn debian_names_are_kernel_crawlers_both_ways() {
        let text = r#"{"Debian": [{"kernelversion": "1", "kernelrelease": "7.3.4-1~bpo13+1-cloud-amd64", "target": "debian", "headers": [
            "http://m/pool/main/l/linux/linux-headers-7.3.4+deb13-common_7.3.4-1~bpo13+1_all.deb",
            "http://m/pool/main/l/linux/linux-headers-7.3.4+deb13-cloud-amd64_7.3.4-1%7Ebpo13%2B1_amd64.deb",
            "http://m/pool/main/l/linux/linux-kbuild-7.3.4+deb13_7.3.4-1~bpo13+1_amd64.deb"]}]}"#;
        let r = read(text, Arch::X86_64).unwrap();
        assert_eq!(r[0].release, "7.3.4+deb13-cloud-amd64");
        assert_eq!(r[0].arch, Arch::X86_64);
        assert_eq!(r[0].packages[1].version, "7.3.4-1~bpo13+1");
        assert_eq!(r[0].file_release(), "7.3.4-1~bpo13+1-cloud-amd64");
        let back = write(&r);
        assert_eq!(
            back["debian"][0]["kernelrelease"],
            "7.3.4-1~bpo13+1-cloud-amd64"
        );
        // Not Debian, or no package of that name: the list's release as it is.
        let other = text.replace("\"target\": \"debian\"", "\"target\": \"x\"");
        assert_eq!(
            read(&other, Arch::X86_64).unwrap()[0].release,
            "7.3.4-1~bpo13+1-cloud-amd64"
        );
    }

    #[test]
    fn rpm_distros_take_kernel_crawlers_keys() {
        for (id, key) in [
            ("opensuse-leap", "opensuse"),
            ("opensuse-tumbleweed", "opensuse"),
            ("sles", "opensuse"),
            ("photon", "photon"),
            ("alinux", "alinux"),
            ("amazonlinux", "amazonlinux"),
            ("amazonlinux2022", "amazonlinux2022"),
        ] {
            assert_eq!(distro_key(id), key, "{id}");
        }
    }
}
