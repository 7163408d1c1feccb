//! Safetensors headers as the weight loader indexes them: every tensor it accepts lies inside
//! the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(index) = subtitle::weights::safetensors_index(bytes) {
        for (name, (_, _, a, b)) in index {
            assert!(a <= b && b <= bytes.len() as u64, "{name}: {a}..{b} of {}", bytes.len());
        }
    }
});
