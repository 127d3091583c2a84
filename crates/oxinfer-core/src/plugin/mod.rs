//! Backends built as their own shared libraries (the torch backend), loaded
//! at run time so that the main addon never links their engines. The two
//! sides talk through a small C ABI (`abi`): `export` turns a Rust `Backend`
//! into it inside the plugin, `host` turns it back into a `Backend` here.

pub mod abi;
pub mod export;
pub mod host;

pub use abi::{Declared, LoadOptions};
pub use host::{open, Plugin, PluginBackend, PluginSpec};
