//! Mirrors from the host's APT sources (`/etc/apt/sources.list`, `sources.list.d/*.list` and
//! deb822 `*.sources`), so a Debian or Ubuntu host uses the mirror it already trusts.

use std::collections::BTreeMap;
use std::path::Path;

/// One `deb` source: URI and suites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
}

/// Parses one-line (`deb [opts] URI SUITE COMP...`) and deb822 (`Types:/URIs:/Suites:`) text.
pub fn parse(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    let deb822 = text.lines().any(|l| l.trim_start().starts_with("Types:"));
    if deb822 {
        for para in text.split("\n\n") {
            let (mut types, mut uris, mut suites) = (Vec::new(), Vec::new(), Vec::new());
            for line in para.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let vals: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
                match k.trim() {
                    "Types" => types = vals,
                    "URIs" => uris = vals,
                    "Suites" => suites = vals,
                    _ => {}
                }
            }
            if types.iter().any(|t| t == "deb") {
                for u in uris {
                    out.push(AptSource {
                        uri: u,
                        suites: suites.clone(),
                    });
                }
            }
        }
    } else {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut w = line.split_whitespace().peekable();
            if w.next() != Some("deb") {
                continue;
            }
            if w.peek().is_some_and(|x| x.starts_with('[')) {
                for x in w.by_ref() {
                    if x.ends_with(']') {
                        break;
                    }
                }
            }
            if let (Some(uri), Some(suite)) = (w.next(), w.next()) {
                out.push(AptSource {
                    uri: uri.to_owned(),
                    suites: vec![suite.to_owned()],
                });
            }
        }
    }
    out
}

const DEBIAN_CODENAMES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "oldstable",
    "testing",
    "unstable",
];
const UBUNTU_CODENAMES: &[&str] = &["focal", "jammy", "noble", "oracular", "plucky", "questing"];

/// Catalog mirror names (`debian`, `debian-security`, `ubuntu`, `ubuntu-ports`) -> URIs.
pub fn mirrors(sources: &[AptSource]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for s in sources {
        let uri = s.uri.trim_end_matches('/').to_owned();
        let base = |x: &String| x.split('-').next().unwrap_or("").to_owned();
        let debian = s
            .suites
            .iter()
            .any(|x| DEBIAN_CODENAMES.contains(&base(x).as_str()));
        let ubuntu = s
            .suites
            .iter()
            .any(|x| UBUNTU_CODENAMES.contains(&base(x).as_str()));
        let security = s.suites.iter().any(|x| x.ends_with("-security"));
        let name = match (debian, ubuntu, security) {
            (true, _, true) => "debian-security",
            (true, _, false) => "debian",
            (_, true, _) if uri.contains("ports") => "ubuntu-ports",
            (_, true, _) => "ubuntu",
            _ => continue,
        };
        m.entry(name.to_owned()).or_insert(uri);
    }
    m
}

/// Mirrors from this host's APT configuration (empty on non-APT hosts).
pub fn host_mirrors() -> BTreeMap<String, String> {
    let mut texts = Vec::new();
    let etc = Path::new("/etc/apt");
    if let Ok(t) = std::fs::read_to_string(etc.join("sources.list")) {
        texts.push(t);
    }
    if let Ok(rd) = std::fs::read_dir(etc.join("sources.list.d")) {
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            if matches!(
                f.extension().and_then(|e| e.to_str()),
                Some("list" | "sources")
            ) {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    texts.push(t);
                }
            }
        }
    }
    let all: Vec<AptSource> = texts.iter().flat_map(|t| parse(t)).collect();
    mirrors(&all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_and_one_line_sources() {
        let d = parse("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n");
        let m = mirrors(&d);
        assert_eq!(m["debian"], "http://mirror.example/debian");
        assert_eq!(
            m["debian-security"],
            "http://mirror.example/debian-security"
        );
        let l = parse("deb [arch=amd64 signed-by=/x] http://u.example/ubuntu/ jammy main # c\ndeb https://other.example/apt cloud-sdk main\n");
        let m = mirrors(&l);
        assert_eq!(m["ubuntu"], "http://u.example/ubuntu");
        assert_eq!(m.len(), 1);
    }
}
