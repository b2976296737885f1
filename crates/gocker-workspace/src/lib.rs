//! Agent workspaces on the Gocker runtime, with no HTTP inside: sessions ([`service`]), the tool
//! catalog ([`catalog`]), the policy engine ([`policy`], [`paths`]), invocations and artifacts
//! ([`model`], [`artifacts`]), stores ([`store`]) and sandbox providers ([`provider`],
//! [`gocker_provider`], [`gvisor_provider`]). File tools act from the service only through confined resolution
//! ([`confined`]); everything that runs a program runs in the session's sandbox.

pub mod artifacts;
pub mod catalog;
pub mod config;
pub mod confined;
pub mod error;
pub mod gocker_provider;
pub mod gvisor_provider;
pub mod ids;
pub mod model;
pub mod paths;
pub mod policy;
pub mod provider;
pub mod providers;
pub mod service;
pub mod store;
pub mod store_redb;
pub mod store_valkey;
mod tools;

pub use error::{ErrorCode, Result, WorkspaceError};
pub use service::{Config, Limits, Service};
