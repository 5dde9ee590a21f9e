//! URL path segments: Falco's loaders ask for `8.0.0%2Bdriver/...`, so every `+` and other
//! reserved byte is escaped the same way everywhere.

/// `+` and other reserved characters escaped as in a URL path segment.
pub fn escape_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn plus_and_reserved_bytes_are_escaped() {
        assert_eq!(super::escape_segment("8.0.0+driver"), "8.0.0%2Bdriver");
        assert_eq!(super::escape_segment("a b/c~d"), "a%20b%2Fc~d");
    }
}
