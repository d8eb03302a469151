//! The guest memory type every device and the loader share.

/// Guest RAM: anonymous mmap regions, no dirty bitmap.
pub type GuestMemoryMmap = vm_memory::GuestMemoryMmap<()>;
