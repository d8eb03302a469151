//! Just enough ELF to find an executable's program interpreter (PT_INTERP): the dynamic
//! loader the kernel starts first, which the initramfs must hold at exactly that path.

const PT_INTERP: u32 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a 64-bit little-endian ELF file: {0}")]
pub struct ElfError(&'static str);

/// The PT_INTERP path of a 64-bit little-endian ELF image, or None for a static executable.
pub fn interpreter(image: &[u8]) -> Result<Option<String>, ElfError> {
    if image.len() < 64 || &image[..4] != b"\x7fELF" {
        return Err(ElfError("bad magic"));
    }
    if image[4] != 2 || image[5] != 1 {
        return Err(ElfError("not ELFCLASS64/ELFDATA2LSB"));
    }
    let phoff = u64_at(image, 0x20)? as usize;
    let phentsize = u16_at(image, 0x36)? as usize;
    let phnum = u16_at(image, 0x38)? as usize;
    if phentsize < 56 {
        return Err(ElfError("program header entries too small"));
    }
    for i in 0..phnum {
        let ph = phoff.checked_add(i * phentsize).ok_or(ElfError("program header offset"))?;
        if u32_at(image, ph)? != PT_INTERP {
            continue;
        }
        let offset = u64_at(image, ph + 8)? as usize;
        let size = u64_at(image, ph + 32)? as usize;
        let end = offset.checked_add(size).ok_or(ElfError("PT_INTERP out of range"))?;
        let raw = image.get(offset..end).ok_or(ElfError("PT_INTERP out of range"))?;
        let path = raw.split(|b| *b == 0).next().unwrap_or_default();
        let path = std::str::from_utf8(path).map_err(|_| ElfError("PT_INTERP is not UTF-8"))?;
        return Ok(Some(path.to_string()));
    }
    Ok(None)
}

fn bytes<const N: usize>(image: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    image
        .get(at..at.checked_add(N).ok_or(ElfError("truncated"))?)
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError("truncated"))
}

fn u16_at(image: &[u8], at: usize) -> Result<u16, ElfError> {
    bytes(image, at).map(u16::from_le_bytes)
}

fn u32_at(image: &[u8], at: usize) -> Result<u32, ElfError> {
    bytes(image, at).map(u32::from_le_bytes)
}

fn u64_at(image: &[u8], at: usize) -> Result<u64, ElfError> {
    bytes(image, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_loader_of_a_dynamic_executable() {
        // Debian's coreutils `true` is dynamically linked (hull and its tests are not:
        // .cargo/config.toml).
        let image = std::fs::read("/bin/true").unwrap();
        let interp = interpreter(&image).unwrap().expect("/bin/true is dynamically linked");
        assert!(interp.starts_with('/') && interp.contains("ld-linux"), "{interp}");
    }

    #[test]
    fn a_static_executable_has_none() {
        // busybox-static, where it is installed.
        for p in ["/bin/busybox", "/usr/bin/busybox"] {
            if let Ok(image) = std::fs::read(p) {
                assert_eq!(interpreter(&image).unwrap(), None);
                return;
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(interpreter(b"").is_err());
        assert!(interpreter(b"#!/bin/sh\n").is_err());
        let mut image = std::fs::read("/proc/self/exe").unwrap();
        image.truncate(80);
        assert!(interpreter(&image).is_err());
    }
}
