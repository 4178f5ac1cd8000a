//! Any byte stream, in any chunking, through the framer: no panic, and the
//! buffer never grows past the limit plus one read.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else { return };
    let mut f = sluice_forward::Framer::new(4096);
    for c in rest.chunks(usize::from(step).max(1)) {
        f.extend(c);
        while let Ok(Some(_)) = f.next_frame() {}
        assert!(f.pending() <= 4096 + 256);
        if f.next_frame().is_err() {
            return;
        }
    }
});
