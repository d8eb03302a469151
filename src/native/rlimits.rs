//! process.rlimits: every RLIMIT_* the spec names, set on the init before exec.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::error::{msg, Result};

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Sets every limit; an error names the limit and says what the kernel refused.
pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let lim = libc::rlimit { rlim_cur: l.soft(), rlim_max: l.hard() };
        // SAFETY: `lim` is a valid rlimit that outlives the call.
        let rc = unsafe { libc::setrlimit(resource(l.typ()), &lim) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            let hint = if e.raw_os_error() == Some(libc::EPERM) {
                " (raising a hard limit needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            return msg(format!(
                "process.rlimits: {} soft={} hard={}: {e}{hint}",
                l.typ(),
                l.soft(),
                l.hard()
            ));
        }
    }
    Ok(())
}
