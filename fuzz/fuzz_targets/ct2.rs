//! CTranslate2 model files (`subtitle models convert`): any bytes are a model or an error, with
//! no allocation the bytes do not justify.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(m) = subtitle::weights::ct2::Ct2Model::parse(bytes) {
        if m.whisper_dims().is_ok() {
            let _ = m.whisper_tensors();
        }
    }
});
