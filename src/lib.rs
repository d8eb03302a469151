//! hull's code as a library. The binary (`src/main.rs`) is the runtime; the library exists so
//! that the fuzz targets (fuzz/) can drive the parsers hostile input reaches: config.json and
//! its validation, the state file, the agent protocol, seccomp profiles. It is not an API.

pub mod agent;
pub mod cgroups;
pub mod cli;
pub mod config;
pub mod container;
pub mod fd_relay;
pub mod fdpass;
pub mod hooks;
pub mod host_user;
pub mod logging;
pub mod native;
pub mod netlink;
pub mod signal;
pub mod spec;
pub mod state;
pub mod vm;
