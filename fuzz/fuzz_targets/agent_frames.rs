//! The agent protocol's decoder, as both ends use it (the host's stand-ins and monitor, the agent
//! in the guest: a hostile guest writes whatever it likes on the vsock stream), fed the stream in
//! pieces of the size the input's first byte gives. Every frame it yields must encode back to
//! bytes that decode to the same frame (of the same kind, for those that carry free JSON), and
//! the guest's statistics are read as the host reads them.

#![no_main]

use hull::agent::protocol::{Frame, FrameDecoder, GuestStats};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else { return };
    let mut decoder = FrameDecoder::new();
    for bytes in stream.chunks(usize::from(piece).max(1)) {
        decoder.push(bytes);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => check(&frame),
                Ok(None) => break,
                // Both ends close the stream on a bad frame.
                Err(_) => return,
            }
        }
    }
    let _ = decoder.finish();
});

fn check(frame: &Frame) {
    let wire = frame.encode().expect("a frame that was decoded encodes");
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire);
    let back = decoder.next_frame().expect("an encoded frame decodes").expect("an encoded frame is whole");
    match frame {
        // JSON numbers with a fraction need not come back bit for bit (serde_json parses them
        // fast, not exactly); resources, statistics and network settings hold none (the long
        // run found 9.999900000186469e43 coming back as 9.99990000018647e43 in a Network frame).
        Frame::Update(_) | Frame::GuestStats(_) | Frame::Network(_) => {
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(frame), "the frame changed kind")
        }
        _ => assert_eq!(&back, frame, "the frame changed on the way"),
    }
    if let Frame::GuestStats(value) = frame {
        let _ = GuestStats::from_value(value.clone());
    }
}
