//! A container's state.json as every command after `create` reads it (the root is root's, but a
//! crash mid-write or a disk error can leave anything there): a state that reads must write back
//! to bytes that read again as the same state. (Compared as states, not as bytes: the
//! capability sets are hash sets, written in any order.)

#![no_main]

use hull::state::State;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = serde_json::from_slice::<State>(data) else { return };
    let written = serde_json::to_vec(&state).expect("a state that was read can be written");
    let again: State = serde_json::from_slice(&written).expect("a state hull wrote reads back");
    assert_eq!(again, state, "the state changed on the way");
});
