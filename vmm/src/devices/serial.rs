//! The 8250 UART on port 0x3f8. (VMM core work.)
