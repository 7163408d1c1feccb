//! Requests to the live preview server (`subtitle live --serve`): any bytes route to the page,
//! the events, not found, or a refusal, without a panic; a request the server answers is one a
//! browser could send (GET, HTTP/1.x).
#![no_main]

use libfuzzer_sys::fuzz_target;
use subtitle::pipeline::serve::{route, Route, MAX_HEAD};

fuzz_target!(|head: &[u8]| {
    let head = &head[..head.len().min(MAX_HEAD)];
    let r = route(head);
    if r != Route::Bad {
        assert!(head.starts_with(b"GET "), "{r:?} for {head:?}");
    }
});
