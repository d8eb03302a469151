//! The guest kernel's command line for vm-run (the VMM appends its `virtio_mmio.device=`
//! entries).
//!
//! - `reboot=k panic=-1`: a reboot pulses the i8042 reset line and a panic reboots at once,
//!   so the guest always ends the VM, and the agent's final reboot is how it powers off;
//! - `rdinit=/init`: hull, from the initramfs;
//! - `i8042.noaux i8042.nomux i8042.dumbkbd`: the VMM's i8042 is only a reset line, so the
//!   driver skips probing a mouse port and a multiplexer it would wait for;
//! - `nomodule`: everything is built in; `8250.nr_uarts=1`: one serial port to set up;
//! - `printk.devkmsg=on`: the agent logs through /dev/kmsg, which otherwise drops lines past
//!   ten in five seconds, and its last line is the one that says what went wrong;
//! - `quiet` unless the console is wanted (`--serial`; the VMM adds `console=ttyS0` itself
//!   when its serial port is on).

pub fn build(serial: bool, extra: Option<&str>) -> String {
    let mut parts = vec![
        "reboot=k",
        "panic=-1",
        "rdinit=/init",
        "i8042.noaux",
        "i8042.nomux",
        "i8042.dumbkbd",
        "nomodule",
        "8250.nr_uarts=1",
        "printk.devkmsg=on",
    ];
    if !serial {
        parts.push("quiet");
    }
    let mut line = parts.join(" ");
    if let Some(extra) = extra.map(str::trim).filter(|e| !e.is_empty()) {
        line.push(' ');
        line.push_str(extra);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_without_the_serial_console_and_loud_with_it() {
        let quiet = build(false, None);
        assert!(quiet.contains("reboot=k") && quiet.contains("panic=-1") && quiet.contains("rdinit=/init"));
        assert!(quiet.split(' ').any(|p| p == "quiet") && !quiet.contains("console="));
        let loud = build(true, Some(" loglevel=8 "));
        assert!(!loud.split(' ').any(|p| p == "quiet"));
        assert!(loud.ends_with(" loglevel=8"));
    }
}
