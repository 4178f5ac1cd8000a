//! Any bytes as one Forward request: decode must not panic, and whatever it
//! accepts must be a stream that iterates to its claimed length.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = sluice_forward::Limits { decompression: 1 << 20, skip_invalid_event: true };
    if let Ok(Some(r)) = sluice_forward::decode(&bytes::Bytes::copy_from_slice(data), &limits, sluice_event::EventTime::new(1, 0)) {
        assert_eq!(r.events.iter().count(), r.events.len());
    }
});
