//! The event decoder and the workload check over arbitrary bytes: what comes back from the VM
//! is the probe's output, and a broken probe writes anything.
#![no_main]
use libfuzzer_sys::fuzz_target;
use probeforge::verify::events::{check, EventInfo, EventSchema};

fuzz_target!(|data: &[u8]| {
    let schema = EventSchema {
        header_len: 26,
        events: (0..8)
            .map(|i| EventInfo {
                name: ["open", "clone", "execve", "bpf"][i % 4].into(),
                flags: if i == 7 { 1 << 11 } else { 0 },
                params: (0..i).map(|p| (format!("p{p}"), (p % 4) as u32)).collect(),
            })
            .collect(),
        text_types: vec![1, 2],
        signed_types: vec![3],
        large_payload_flag: 1 << 11,
    };
    let _ = schema.decode(data);
    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
    let _ = check(&schema, &serde_json::json!({"events": [hex], "child": 2}));
});
