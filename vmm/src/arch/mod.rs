//! x86_64 specifics. (VMM core work.)
