//! Any bytes as a .deb, .rpm or tarball: the unpacker may refuse them, never panic, never
//! write outside its root.
#![no_main]
use libfuzzer_sys::fuzz_target;
use probeforge::extract::{Format, Limits, Selection, Unpacker};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else { return };
    let format = match sel % 3 {
        0 => Format::Deb,
        1 => Format::Rpm,
        _ => Format::Tar,
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let limits = Limits { max_total_bytes: 64 << 20, max_entries: 10_000, max_ratio: 200 };
    let mut u = Unpacker::new(&root, Selection::Everything, limits).unwrap();
    let _ = u.unpack("fuzz", format, std::io::Cursor::new(data.to_vec()));
    // Nothing may appear beside the root.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(names.iter().all(|n| n == "root"), "{names:?}");
});
