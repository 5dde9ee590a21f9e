//! The probe validator over arbitrary bytes (it reads objects users hand it).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = probeforge::validate::validate(data, &Default::default());
    let _ = r.ok();
});
