//! Creates a VM's live objects in order from a [`crate::VmConfig`]. (VMM core work.)
