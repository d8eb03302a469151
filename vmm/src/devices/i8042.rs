//! The i8042 keyboard controller, for its reset line. (VMM core work.)
