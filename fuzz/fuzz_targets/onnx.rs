//! ONNX graphs (the image encoder's conversion): any bytes are a graph or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = subtitle::weights::onnx::read(bytes);
});
