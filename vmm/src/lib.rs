//! hull's VMM: the KVM microVM the vm backend boots around a bundle.
//!
//! Empty until the vmm issue lands; the crate exists so the workspace layout is the one
//! DESIGN.md describes and later work has a home.
