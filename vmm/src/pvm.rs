//! PVM hosts: `/dev/kvm` provided by the kvm_pvm module (KVM without hardware virtualization)
//! only runs guest kernels built for PVM. A stock kernel hangs there without a word, so the
//! VMM refuses up front and says why.

use std::path::Path;

use crate::error::Error;

/// Present when /dev/kvm comes from kvm_pvm.
pub const KVM_PVM_MODULE: &str = "/sys/module/kvm_pvm";

/// Whether this host's /dev/kvm is PVM-backed.
pub fn host_is_pvm() -> bool {
    host_is_pvm_at(Path::new(KVM_PVM_MODULE))
}

fn host_is_pvm_at(module: &Path) -> bool {
    module.exists()
}

/// Fails when the host is PVM and the kernel is not known to be built for it.
pub fn check(kernel: &Path, kernel_supports_pvm: bool) -> Result<(), Error> {
    check_at(Path::new(KVM_PVM_MODULE), kernel, kernel_supports_pvm)
}

fn check_at(module: &Path, kernel: &Path, kernel_supports_pvm: bool) -> Result<(), Error> {
    if !host_is_pvm_at(module) || kernel_supports_pvm {
        return Ok(());
    }
    Err(Error::Pvm(format!(
        "/dev/kvm on this host is provided by kvm_pvm ({}), which runs only guest kernels built for \
         PVM, and {} is not marked as one: the guest would hang. Use a host with hardware \
         virtualization (or nested KVM), or a PVM guest kernel with `kernel_pvm = true` in \
         /etc/hull/config.toml (HULL_KERNEL_PVM=1)",
        module.display(),
        kernel.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_stock_kernel_only_on_pvm_hosts() {
        let dir = std::env::temp_dir().join(format!("hull-pvm-test-{}", std::process::id()));
        let module = dir.join("kvm_pvm");
        let kernel = Path::new("/k/bzImage");
        assert!(check_at(&module, kernel, false).is_ok());
        std::fs::create_dir_all(&module).unwrap();
        let err = check_at(&module, kernel, false).unwrap_err().to_string();
        assert!(err.contains("kvm_pvm") && err.contains("/k/bzImage") && err.contains("hang"), "{err}");
        assert!(check_at(&module, kernel, true).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
