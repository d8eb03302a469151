//! The live VM: vcpu threads and the event loop, run until the guest stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::config::VmConfig;
use crate::devices::bus::Bus;
use crate::error::{Error, Result};
use crate::memory::GuestMemoryMmap;
use crate::vstate::vcpu::{install_kick_handler, Vcpu, VcpuContext, VcpuThread};
use crate::vstate::vm::Vm;

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset through the i8042 reset line (`reboot=k`) or a KVM system event. A
    /// Linux guest's `reboot` and `panic=-1` end here. There is no power-off device (no ACPI):
    /// a guest `poweroff` or `halt` stops its CPUs for good and the VM runs until
    /// [`VmmHandle::stop`], so a guest that is done reboots.
    Reset,
    /// A triple fault (KVM_EXIT_SHUTDOWN): the guest CPU gave up without the kernel's say,
    /// which a PC answers with a reset too. Kept apart from [`VmExit::Reset`] because it
    /// points at the CPU (or its emulation), not at the guest's software.
    /// Where the vcpu that got it was (its number, rip, rsp, control registers), for the
    /// message.
    TripleFault(String),
    /// [`VmmHandle::stop`] was called.
    Stopped,
    /// A vcpu failed: KVM_RUN returned an error or an exit the VMM cannot handle.
    VcpuError(String),
}

/// When things happened, for `--debug` boot timelines.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub vmm_start: Instant,
    /// Memory, kernel, devices and vcpus ready.
    pub built: Option<Instant>,
    /// The boot vcpu entered the guest for the first time.
    pub kernel_entry: Option<Instant>,
    pub exited: Option<Instant>,
}

/// The event loop's subscribers: the virtio devices and the exit listener.
pub(crate) type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// A VM built from a [`VmConfig`], not yet running.
pub struct Vmm {
    // Dropped in this order: vcpus, then the VM, then the memory it maps.
    pub(crate) vcpus: Vec<Vcpu>,
    pub(crate) event_manager: EventManager<Subscriber>,
    pub(crate) pio_bus: Bus,
    pub(crate) mmio_bus: Bus,
    pub(crate) exit: Arc<ExitSignal>,
    pub(crate) vm: Vm,
    pub(crate) memory: GuestMemoryMmap,
    pub(crate) timeline: Timeline,
    /// What each vcpu thread installs before its first KVM_RUN.
    pub(crate) vcpu_filter: Option<Arc<seccompiler::BpfProgram>>,
}

/// Lets another thread stop a running VM. Clone + Send. It holds no fd: once the VM is gone,
/// `stop` does nothing.
#[derive(Clone)]
pub struct VmmHandle {
    exit: Weak<ExitSignal>,
}

impl Vmm {
    /// Creates everything in order (see [`crate::builder`]); nothing runs yet.
    pub fn build(config: VmConfig) -> Result<Vmm> {
        crate::builder::build(config)
    }

    pub fn handle(&self) -> VmmHandle {
        VmmHandle { exit: Arc::downgrade(&self.exit) }
    }

    /// Starts the vcpus and runs the event loop on this thread until the guest stops; every
    /// thread is joined and every fd closed before it returns.
    pub fn run(self) -> Result<(VmExit, Timeline)> {
        let Vmm { vcpus, mut event_manager, pio_bus, mmio_bus, exit, vm, memory, mut timeline, vcpu_filter } =
            self;
        install_kick_handler()?;
        let stop = Arc::new(AtomicBool::new(false));
        let first_entry = Arc::new(OnceLock::new());
        let mut threads: Vec<VcpuThread> = Vec::with_capacity(vcpus.len());
        let mut spawn_error = None;
        for (i, vcpu) in vcpus.into_iter().enumerate() {
            let ctx = VcpuContext {
                pio: pio_bus.clone(),
                mmio: mmio_bus.clone(),
                exit: exit.clone(),
                stop: stop.clone(),
                first_entry: (i == 0).then(|| first_entry.clone()),
                filter: vcpu_filter.clone(),
            };
            match vcpu.spawn(ctx) {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    spawn_error = Some(Error::io(format!("starting the thread of vcpu {i}"), e));
                    break;
                }
            }
        }

        let result = match spawn_error {
            Some(e) => Err(e),
            None => event_loop(&mut event_manager, &exit),
        };

        stop.store(true, Ordering::SeqCst);
        for thread in &threads {
            thread.kick();
        }
        let mut panicked = Vec::new();
        for thread in threads {
            if let Err(e) = thread.join() {
                panicked.push(e);
            }
        }
        timeline.kernel_entry = first_entry.get().copied();
        timeline.exited = Some(Instant::now());
        // Close everything before returning: devices (and their fds) with the event manager,
        // then the VM, then guest memory.
        drop((event_manager, pio_bus, mmio_bus, exit, vm, memory));
        let exit = result?;
        match (exit, panicked.is_empty()) {
            (exit, true) => Ok((exit, timeline)),
            (VmExit::VcpuError(e), false) => {
                Ok((VmExit::VcpuError(format!("{e}; {}", panicked.join("; "))), timeline))
            }
            (_, false) => Ok((VmExit::VcpuError(panicked.join("; ")), timeline)),
        }
    }
}

/// Dispatches device events until something reports an exit.
fn event_loop(event_manager: &mut EventManager<Subscriber>, exit: &ExitSignal) -> Result<VmExit> {
    loop {
        if let Some(reason) = exit.reason() {
            return Ok(reason);
        }
        event_manager
            .run()
            .map_err(|e| Error::io("the VMM event loop", std::io::Error::other(e.to_string())))?;
    }
}

impl VmmHandle {
    /// Ends the VM as soon as possible; `run` then returns [`VmExit::Stopped`].
    pub fn stop(&self) {
        if let Some(exit) = self.exit.upgrade() {
            exit.report(VmExit::Stopped);
        }
    }
}

/// How vcpu threads, devices and [`VmmHandle`]s tell the event loop that the VM is done: the
/// first reason reported wins, and the eventfd wakes the loop.
pub(crate) struct ExitSignal {
    reason: Mutex<Option<VmExit>>,
    event: EventFd,
}

impl ExitSignal {
    pub(crate) fn new() -> Result<Self> {
        let event =
            EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::io("creating the exit eventfd", e))?;
        Ok(ExitSignal { reason: Mutex::new(None), event })
    }

    pub(crate) fn report(&self, exit: VmExit) {
        let mut reason = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if reason.is_none() {
            *reason = Some(exit);
        }
        // Cannot fail short of the counter overflowing, when the loop is awake anyway.
        let _ = self.event.write(1);
    }

    fn reason(&self) -> Option<VmExit> {
        self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Wakes the event loop when an exit is reported (the loop then checks [`ExitSignal`]).
pub(crate) struct ExitListener(pub(crate) Arc<ExitSignal>);

impl MutEventSubscriber for ExitListener {
    fn init(&mut self, ops: &mut EventOps) {
        // Only fails on an epoll error, which the next epoll_wait reports too.
        let _ = ops.add(Events::new(&self.0.event, EventSet::IN));
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.0.event.read();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_manager::SubscriberOps;

    #[test]
    fn a_vmm_can_move_to_another_thread_and_handles_go_anywhere() {
        fn send<T: Send>() {}
        fn send_sync_clone<T: Send + Sync + Clone>() {}
        send::<Vmm>();
        send_sync_clone::<VmmHandle>();
    }

    #[test]
    fn the_first_exit_reported_wins_and_wakes_the_loop() {
        let exit = Arc::new(ExitSignal::new().unwrap());
        let mut em: EventManager<Subscriber> = EventManager::new().unwrap();
        em.add_subscriber(Arc::new(Mutex::new(ExitListener(exit.clone()))));
        let handle = VmmHandle { exit: Arc::downgrade(&exit) };
        let h2 = handle.clone();
        std::thread::spawn(move || h2.stop()).join().unwrap();
        exit.report(VmExit::Reset);
        assert_eq!(event_loop(&mut em, &exit).unwrap(), VmExit::Stopped);
        assert_eq!(em.run_with_timeout(0).unwrap(), 1, "the eventfd woke the loop");
        drop(em);
        drop(exit);
        handle.stop(); // the VM is gone: nothing happens
    }
}
