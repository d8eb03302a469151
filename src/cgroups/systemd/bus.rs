//! The D-Bus conversation with systemd's manager (org.freedesktop.systemd1): connect, start
//! or stop a unit and wait for its job, read a unit's cgroup.
//!
//! zbus's blocking API runs its connection on helper threads. That is why hull only talks to
//! systemd after the container's first fork (see native::create): the parent never forks
//! again afterwards, and the children never carry those threads.

use std::sync::mpsc;
use std::time::Duration;

use zbus::blocking::connection::Builder;
use zbus::blocking::{Connection, MessageIterator};
use zbus::message::Type;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::MatchRule;

use super::properties::Properties;
use super::Manager;

const DESTINATION: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";

/// How long one call, or one job, may take (runc waits 30 s for a job too).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The D-Bus error names hull reacts to.
pub const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
pub const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// A failed exchange: the D-Bus error's name when systemd answered with one, and its text.
#[derive(Debug)]
pub struct BusError {
    pub name: Option<String>,
    pub text: String,
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<zbus::Error> for BusError {
    fn from(e: zbus::Error) -> Self {
        let name = match &e {
            zbus::Error::MethodError(n, _, _) => Some(n.as_str().to_string()),
            _ => None,
        };
        // MethodError displays as "<name>: <systemd's text>".
        BusError { name, text: e.to_string() }
    }
}

impl BusError {
    fn other(text: impl Into<String>) -> Self {
        BusError { name: None, text: text.into() }
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name)
    }
}

type R<T> = Result<T, BusError>;

/// The user's session bus, where its systemd (`systemd --user`) answers.
fn user_bus_address() -> R<String> {
    if let Some(a) = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok().filter(|a| !a.is_empty()) {
        return Ok(a);
    }
    match std::env::var("XDG_RUNTIME_DIR").ok().filter(|d| !d.is_empty()) {
        Some(dir) => Ok(format!("unix:path={dir}/bus")),
        None => Err(BusError::other(
            "rootless --systemd-cgroup: the user's systemd is on the session bus, but neither \
             DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR says where it is",
        )),
    }
}

/// Our uid as the parent user namespace sees it (the bus daemon's view): in rootless
/// podman's namespace 0 is the user's own uid outside.
fn host_uid() -> u32 {
    let uid = nix::unistd::geteuid().as_raw();
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    outside_id(&map, uid)
}

fn outside_id(map: &str, id: u32) -> u32 {
    for line in map.lines() {
        let f: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        if let [inside, outside, count] = f[..] {
            if (inside..inside + count).contains(&u64::from(id)) {
                return u32::try_from(outside + (u64::from(id) - inside)).unwrap_or(id);
            }
        }
    }
    id
}

/// A connection to systemd's manager, over the system bus (or the user's session bus).
///
/// Not over systemd's private socket (/run/systemd/private), though root may use it: systemd
/// marks every message there as sent by "org.freedesktop.systemd1", which is not a unique
/// bus name, and zbus (5.19, and 6.2 alike) panics on such a sender when it reads the
/// message's header; with panic=abort that would kill `hull create` halfway. runc and crun
/// use the system bus only, too.
pub struct Systemd {
    conn: Connection,
}

impl Systemd {
    /// The system's manager: $DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket. The
    /// user's: $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus.
    pub fn connect(manager: Manager) -> R<Systemd> {
        let (address, uid) = match manager {
            Manager::System => {
                (std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| SYSTEM_BUS.to_string()), None)
            }
            Manager::User => (user_bus_address()?, Some(host_uid())),
        };
        let built = Builder::address(address.as_str()).and_then(|b| {
            // The bus daemon checks EXTERNAL authentication against the uid it sees, the
            // user's; inside rootless podman's user namespace ours is 0.
            let b = match uid {
                Some(uid) => b.user_id(uid),
                None => b,
            };
            b.method_timeout(TIMEOUT).build()
        });
        match (built, manager) {
            (Ok(conn), _) => Ok(Systemd { conn }),
            (Err(e), Manager::System) => Err(BusError::other(format!(
                "systemd is the init, but its D-Bus API is not reachable on the system bus {address}: {e}"
            ))),
            (Err(e), Manager::User) => Err(BusError::other(format!(
                "rootless --systemd-cgroup: the user's systemd is not reachable on the session bus {address}: \
                 {e} (a rootless container's scope is the user's own systemd's: run in a user session, \
                 or without --systemd-cgroup)"
            ))),
        }
    }

    fn call<B>(&self, path: &str, iface: &str, method: &str, body: &B) -> R<zbus::Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        Ok(self.conn.call_method(Some(DESTINATION), path, Some(iface), method, body)?)
    }

    /// systemd's major version ("252.38-1~deb12u1" -> 252), None when it cannot be read.
    pub fn version(&self) -> Option<u32> {
        let reply = self.call(PATH, PROPERTIES, "Get", &(MANAGER, "Version")).ok()?;
        let v: OwnedValue = reply.body().deserialize().ok()?;
        let s = String::try_from(v).ok()?;
        major_version(&s)
    }

    /// StartTransientUnit(unit, "replace", properties, no aux units), then its job's result.
    pub fn start_transient_unit(&self, unit: &str, props: &Properties) -> R<String> {
        let aux: Vec<(&str, Properties)> = Vec::new();
        self.run_job("StartTransientUnit", &(unit, "replace", props, aux))
    }

    /// StopUnit(unit, "replace"), then its job's result.
    pub fn stop_unit(&self, unit: &str) -> R<String> {
        self.run_job("StopUnit", &(unit, "replace"))
    }

    /// SetUnitProperties(unit, runtime: true, properties): until reboot, not persisted.
    pub fn set_unit_properties(&self, unit: &str, props: &Properties) -> R<()> {
        self.call(PATH, MANAGER, "SetUnitProperties", &(unit, true, props)).map(|_| ())
    }

    /// Lets systemd forget a failed unit, so its name can be used again.
    pub fn reset_failed_unit(&self, unit: &str) -> R<()> {
        self.call(PATH, MANAGER, "ResetFailedUnit", &(unit,)).map(|_| ())
    }

    /// The unit's ControlGroup property (a path below systemd's cgroup root).
    pub fn control_group(&self, unit: &str) -> R<String> {
        let reply = self.call(PATH, MANAGER, "GetUnit", &(unit,))?;
        let obj: OwnedObjectPath = reply.body().deserialize()?;
        let reply =
            self.call(obj.as_str(), PROPERTIES, "Get", &("org.freedesktop.systemd1.Scope", "ControlGroup"))?;
        let v: OwnedValue = reply.body().deserialize()?;
        String::try_from(v).map_err(|e| BusError::other(format!("ControlGroup of {unit}: {e}")))
    }

    /// Calls a manager method that queues a job and waits for the job's JobRemoved signal:
    /// its result ("done", "failed", "canceled", "timeout", "dependency", "skipped").
    fn run_job<B>(&self, method: &str, body: &B) -> R<String>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        // Listen before asking: a job can finish before the call's reply is read. systemd
        // sends JobRemoved to the client that queued the job, no Subscribe() needed.
        let rule = MatchRule::builder()
            .msg_type(Type::Signal)
            .sender(DESTINATION)?
            .interface(MANAGER)?
            .member("JobRemoved")?
            .path(PATH)?
            .build();
        let signals = MessageIterator::for_match_rule(rule, &self.conn, None)?;
        let reply = self.call(PATH, MANAGER, method, body)?;
        let job: OwnedObjectPath = reply.body().deserialize()?;
        wait_for_job(signals, job, TIMEOUT)
    }
}

/// Reads JobRemoved signals until the one for `job`. A helper thread reads them: zbus's
/// blocking iterator has no timeout of its own. On a timeout the thread is left blocked; the
/// hull process it belongs to is about to exit with an error anyway.
fn wait_for_job(signals: MessageIterator, job: OwnedObjectPath, timeout: Duration) -> R<String> {
    let (tx, rx) = mpsc::channel();
    let job_name = job.as_str().to_string();
    let spawned = std::thread::Builder::new().name("systemd-job".into()).spawn(move || {
        for msg in signals {
            let Ok(msg) = msg else { break };
            // JobRemoved(u id, o job, s unit, s result)
            if let Ok((_, path, _, result)) =
                msg.body().deserialize::<(u32, OwnedObjectPath, String, String)>()
            {
                if path == job {
                    let _ = tx.send(result);
                    return;
                }
            }
        }
    });
    spawned
        .map_err(|e| BusError::other(format!("start a thread to wait for systemd job {job_name}: {e}")))?;
    rx.recv_timeout(timeout).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => {
            BusError::other(format!("systemd job {job_name} did not finish within {} s", timeout.as_secs()))
        }
        mpsc::RecvTimeoutError::Disconnected => {
            BusError::other(format!("the D-Bus connection closed before systemd job {job_name} finished"))
        }
    })
}

/// The leading number of systemd's version string ("252.38-1~deb12u1", "v245-1.fc32").
fn major_version(s: &str) -> Option<u32> {
    let digits: String = s.trim_start_matches(['"', 'v']).chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::systemd::properties::for_scope;
    use crate::cgroups::systemd::unit::Scope;
    use zbus::zvariant::Value;

    #[test]
    fn ids_seen_from_outside() {
        assert_eq!(
            outside_id("         0       1000          1\n         1     100000      65536\n", 0),
            1000
        );
        assert_eq!(outside_id("0 1000 1\n1 100000 65536\n", 5), 100004);
        assert_eq!(outside_id("         0          0 4294967295\n", 1000), 1000);
        assert_eq!(outside_id("", 7), 7);
    }

    #[test]
    fn versions() {
        assert_eq!(major_version("252.38-1~deb12u1"), Some(252));
        assert_eq!(major_version("v245-1.fc32"), Some(245));
        assert_eq!(major_version("\"249\""), Some(249));
        assert_eq!(major_version("x"), None);
    }

    /// The StartTransientUnit call marshals with the signature systemd's method has, and
    /// what is read back is what was meant.
    #[test]
    fn start_transient_unit_message() {
        let scope = Scope::new(Some("system.slice:hull:c1"), "c1", Manager::System).unwrap();
        let props = for_scope(&scope, 4242, None, true, Some(252)).unwrap();
        let aux: Vec<(&str, Properties)> = Vec::new();
        let msg = zbus::Message::method_call(PATH, "StartTransientUnit")
            .unwrap()
            .destination(DESTINATION)
            .unwrap()
            .interface(MANAGER)
            .unwrap()
            .build(&(scope.unit.as_str(), "replace", &props, aux))
            .unwrap();
        // The header's signature is what systemd checks the call against.
        assert_eq!(msg.header().signature().to_string_no_parens(), "ssa(sv)a(sa(sv))");
        let body = msg.body();
        type Aux<'a> = Vec<(String, Vec<(String, Value<'a>)>)>;
        let (name, mode, back, aux): (String, String, Vec<(String, Value)>, Aux) =
            body.deserialize().unwrap();
        assert_eq!((name.as_str(), mode.as_str()), ("hull-c1.scope", "replace"));
        assert!(aux.is_empty());
        let pids = back.iter().find(|(n, _)| n == "PIDs").map(|(_, v)| v.clone()).unwrap();
        assert_eq!(pids.value_signature().to_string(), "au");
        assert_eq!(pids, Value::from(vec![4242u32]));
        let slice = back.iter().find(|(n, _)| n == "Slice").map(|(_, v)| v.clone()).unwrap();
        assert_eq!(slice, Value::from("system.slice"));
    }

    #[test]
    fn method_errors_keep_their_name() {
        let e = BusError { name: Some(UNIT_EXISTS.into()), text: "x".into() };
        assert!(e.is(UNIT_EXISTS) && !e.is(NO_SUCH_UNIT));
        assert!(!BusError::other("y").is(UNIT_EXISTS));
    }
}
