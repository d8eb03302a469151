//! The guest's initramfs, made on the fly from the running hull: hull itself as `/init`, the
//! shared libraries it has loaded and its dynamic loader at their own paths, the agent's
//! config, and the directories and device nodes PID 1 needs before it mounts anything.
//!
//! Nothing is cached on disk: the image is built in memory each time (a few MB, a few ms) and
//! uncompressed, which is what the kernel unpacks fastest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::cpio::CpioWriter;
use super::elf;
use crate::agent::{AgentConfig, CONFIG_PATH, INIT_PATH};

/// The image and what went into it, for --debug.
pub struct Initramfs {
    pub image: Vec<u8>,
    /// The host files carried in (hull, libraries, the loader).
    pub files: Vec<PathBuf>,
}

/// Builds the initramfs around this process's own executable.
pub fn build(config: &AgentConfig) -> anyhow::Result<Initramfs> {
    let exe = std::fs::read("/proc/self/exe").context("reading hull's own executable (/proc/self/exe)")?;
    let exe_path = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let interp = elf::interpreter(&exe).with_context(|| format!("reading {}", exe_path.display()))?;
    let maps = std::fs::read_to_string("/proc/self/maps").context("reading /proc/self/maps")?;
    let libraries = mapped_libraries(&maps, &exe_path);
    let agent_json = serde_json::to_vec(config).context("encoding the agent config")?;

    let mut w = CpioWriter::new();
    skeleton(&mut w)?;
    w.file(INIT_PATH, 0o755, &exe)?;
    w.file(CONFIG_PATH, 0o644, &agent_json)?;
    let mut files = vec![exe_path];
    // The loader first, at the path the kernel looks for it (on Debian a symlink: the file it
    // points to goes there as a regular file, so no symlink chain has to be rebuilt).
    let mut carried = BTreeSet::new();
    if let Some(interp) = &interp {
        let data = std::fs::read(interp).with_context(|| format!("reading the dynamic loader {interp}"))?;
        w.file(interp, 0o755, &data)?;
        carried.insert(canonical(Path::new(interp)));
        files.push(PathBuf::from(interp));
    }
    for lib in libraries {
        // The loader is also mapped, under its real path: once is enough.
        if !carried.insert(canonical(&lib)) {
            continue;
        }
        let path = lib.to_str().with_context(|| format!("library path {} is not UTF-8", lib.display()))?;
        if w.contains(path) {
            continue;
        }
        let data = std::fs::read(&lib).with_context(|| format!("reading the shared library {path}"))?;
        w.file(path, 0o755, &data)?;
        files.push(lib);
    }
    Ok(Initramfs { image: w.finish(), files })
}

/// The directories PID 1 mounts on, and the device nodes the kernel (the initial console) and
/// Rust's runtime (which reopens closed stdio on /dev/null) need before devtmpfs is mounted.
fn skeleton(w: &mut CpioWriter) -> anyhow::Result<()> {
    for (dir, mode) in [
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/dev", 0o755),
        ("/run", 0o755),
        ("/mnt", 0o755),
        ("/etc", 0o755),
    ] {
        w.dir(dir, mode)?;
    }
    w.dir("/tmp", 0o1777)?;
    w.char_device("/dev/console", 0o600, 5, 1)?;
    w.char_device("/dev/null", 0o666, 1, 3)?;
    Ok(())
}

/// The shared libraries among the files mapped into this process (`/proc/self/maps`), each
/// once, in the order first mapped, without the executable itself.
pub fn mapped_libraries(maps: &str, exe: &Path) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    let mut libs = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path: the path is the 6th field and may hold spaces.
        let Some(path) = line.splitn(6, char::is_whitespace).nth(5).map(str::trim) else { continue };
        if !path.starts_with('/') || path.ends_with(" (deleted)") || Path::new(path) == exe {
            continue;
        }
        let is_library =
            Path::new(path).file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(".so"));
        if is_library && seen.insert(path.to_string()) {
            libs.push(PathBuf::from(path));
        }
    }
    libs
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::cpio::tests::read_archive;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a50000 r--p 00000000 fe:01 1234   /usr/local/bin/hull
55d0c0a50000-55d0c0c00000 r-xp 00050000 fe:01 1234   /usr/local/bin/hull
55d0c2000000-55d0c2021000 rw-p 00000000 00:00 0      [heap]
7f1e2c000000-7f1e2c028000 r--p 00000000 fe:01 2001   /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2c028000-7f1e2c19d000 r-xp 00028000 fe:01 2001   /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2c1f0000-7f1e2c1f4000 r--p 00000000 fe:01 2002   /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
7f1e2c200000-7f1e2c210000 r--s 00000000 fe:01 3000   /usr/lib/locale/C.utf8/LC_CTYPE
7f1e2c300000-7f1e2c301000 r--p 00000000 fe:01 2003   /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f1e2c400000-7f1e2c401000 r--p 00000000 fe:01 2004   /tmp/old lib.so (deleted)
7ffd1c000000-7ffd1c021000 rw-p 00000000 00:00 0      [stack]
7ffd1c1fe000-7ffd1c200000 r-xp 00000000 00:00 0      [vdso]
";

    #[test]
    fn maps_give_each_library_once_and_nothing_else() {
        let libs = mapped_libraries(MAPS, Path::new("/usr/local/bin/hull"));
        let libs: Vec<&str> = libs.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            libs,
            [
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn the_image_holds_init_its_libraries_and_the_agent_config() {
        let config = AgentConfig {
            port: 1024,
            share_tag: "hullroot".into(),
            mount_point: "/run/share".into(),
            debug: true,
            binds: Vec::new(),
            exec_port: None,
            container: None,
            hook_state: None,
            network: None,
            preserved: Vec::new(),
        };
        let built = build(&config).unwrap();
        let entries = read_archive(&built.image);
        let by = |n: &str| entries.iter().find(|e| e.name == n);
        let init = by("init").expect("/init");
        assert_eq!(init.mode, 0o100755);
        assert_eq!(init.data, std::fs::read("/proc/self/exe").unwrap());
        let cfg: AgentConfig = serde_json::from_slice(&by("etc/hull-agent.json").unwrap().data).unwrap();
        assert_eq!(cfg, config);
        for dir in ["proc", "sys", "dev", "run", "mnt", "tmp"] {
            assert_eq!(by(dir).map(|e| e.mode & 0o170000), Some(0o040000), "{dir}");
        }
        assert_eq!(by("dev/console").map(|e| e.rdev), Some((5, 1)));
        assert_eq!(by("dev/null").map(|e| e.rdev), Some((1, 3)));
        // A dynamic executable: the loader at its PT_INTERP path, as a regular file, and libc
        // wherever it is mapped. A static one (hull's own build, .cargo/config.toml): neither,
        // and no shared library at all.
        match elf::interpreter(&init.data).unwrap() {
            Some(interp) => {
                let loader = by(interp.trim_start_matches('/')).expect("the loader");
                assert_eq!(loader.mode & 0o170000, 0o100000);
                assert_eq!(loader.data, std::fs::read(&interp).unwrap());
                assert!(entries.iter().any(|e| e.name.ends_with("/libc.so.6")), "libc");
            }
            None => {
                let libs: Vec<_> =
                    entries.iter().filter(|e| e.name.contains(".so")).map(|e| &e.name).collect();
                assert!(libs.is_empty(), "a static init carries no libraries: {libs:?}");
                assert_eq!(built.files.len(), 1, "{:?}", built.files);
            }
        }
        // Every file is under a directory that comes before it.
        for (i, e) in entries.iter().enumerate() {
            if let Some((parent, _)) = e.name.rsplit_once('/') {
                assert!(entries[..i].iter().any(|p| p.name == parent), "{} before its parent", e.name);
            }
        }
    }
}
