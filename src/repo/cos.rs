//! Container-Optimized OS: build IDs from the `cos-tools` bucket listing (GCS XML API),
//! `<build>/kernel-headers.tgz` per build, and the kernel release and `uname -v` read from the
//! headers themselves (COS publishes no package index). Parsers take bytes.

use std::io::Read;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::ParseError;

/// One page of a bucket listing: the `CommonPrefixes` (build IDs, with their `/`) and the
/// marker of the next page when truncated.
pub fn parse_listing(xml: &[u8]) -> Result<(Vec<String>, Option<String>), ParseError> {
    let mut r = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let (mut prefixes, mut next, mut truncated) = (Vec::new(), None, false);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut seen_root = false;
    loop {
        match r.read_event_into(&mut buf)? {
            Event::Start(e) => {
                if path.is_empty() {
                    if e.name().as_ref() != b"ListBucketResult" {
                        return Err(ParseError::Shape(
                            "not a bucket listing (no ListBucketResult)",
                        ));
                    }
                    seen_root = true;
                }
                path.push(e.name().as_ref().to_vec());
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let v = t.unescape()?.trim().to_owned();
                let names: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                match names.as_slice() {
                    [b"ListBucketResult", b"CommonPrefixes", b"Prefix"] => prefixes.push(v),
                    [b"ListBucketResult", b"NextMarker"] => next = Some(v),
                    [b"ListBucketResult", b"IsTruncated"] => truncated = v == "true",
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !seen_root {
        return Err(ParseError::Shape("empty listing"));
    }
    Ok((prefixes, if truncated { next } else { None }))
}

/// What a COS headers tarball says: (`UTS_RELEASE`, `UTS_VERSION`), read by streaming it.
pub fn headers_facts(r: impl Read + Send) -> Result<(String, Option<String>), ParseError> {
    let dec = crate::extract::decompress(r, "kernel-headers.tgz")
        .map_err(|e| ParseError::Decompress(Box::new(e)))?;
    let mut tar = tar::Archive::new(dec);
    let (mut release, mut version) = (None, None);
    for e in tar.entries()? {
        let mut e = e?;
        let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let want = p.ends_with("include/generated/utsrelease.h")
            || p.ends_with("include/generated/utsversion.h")
            || p.ends_with("include/generated/compile.h");
        if !want {
            continue;
        }
        let mut text = String::new();
        e.by_ref().take(1 << 16).read_to_string(&mut text)?;
        if let Some(v) = crate::kernel::define_string(&text, "UTS_RELEASE") {
            release = Some(v);
        }
        if let Some(v) = crate::kernel::define_string(&text, "UTS_VERSION") {
            version = Some(v);
        }
        if release.is_some() && version.is_some() {
            break;
        }
    }
    Ok((
        release.ok_or(ParseError::Shape(
            "no include/generated/utsrelease.h in the headers",
        ))?,
        version,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_pages() {
        let x = br#"<?xml version='1.0' encoding='UTF-8'?><ListBucketResult xmlns="http://doc.s3.amazonaws.com/2006-03-01"><Name>cos-tools</Name><Prefix></Prefix><Marker></Marker><NextMarker>17800.147.54/</NextMarker><IsTruncated>true</IsTruncated><Delimiter>/</Delimiter><CommonPrefixes><Prefix>16919.404.26/</Prefix></CommonPrefixes><CommonPrefixes><Prefix>17800.147.54/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let (p, next) = parse_listing(x).unwrap();
        assert_eq!(p, ["16919.404.26/", "17800.147.54/"]);
        assert_eq!(next.as_deref(), Some("17800.147.54/"));
        assert!(parse_listing(b"<html/>").is_err());
    }
}
