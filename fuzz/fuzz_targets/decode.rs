//! `Envelope::decode_slice` on arbitrary bytes: never panics, and whatever
//! it accepts survives encode -> decode unchanged.
//!
//! Seeds: `fuzz/seeds/decode/` (the protocol fixtures and some edge cases).

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsdrain::protocol::Envelope;

fuzz_target!(|data: &[u8]| {
    let decoded = Envelope::decode_slice(data);
    // The `&str` entry point agrees with the `&[u8]` one.
    if let Ok(text) = std::str::from_utf8(data) {
        let by_str = Envelope::decode(text);
        match (&decoded, &by_str) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "decode and decode_slice disagree"),
            (Err(_), Err(_)) => {}
            _ => panic!("decode and decode_slice disagree: {decoded:?} vs {by_str:?}"),
        }
    }
    let Ok(envelope) = decoded else { return };

    let encoded = envelope.encode();
    let again = Envelope::decode(&encoded).unwrap_or_else(|error| {
        panic!("an accepted message does not decode after encoding: {error}\n  encoded: {encoded}")
    });
    assert_eq!(
        again, envelope,
        "encode -> decode changed the message\n  encoded: {encoded}"
    );
    // One round reaches the fixpoint: the encoding is canonical.
    assert_eq!(again.encode(), encoded, "encoding is not stable");
});
