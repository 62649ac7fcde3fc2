//! Storage driver primitives for Dockyard: overlay mounts, btrfs subvolumes,
//! exact tree copies and volume copy-up. No Python here.
//!
//! Every function is a plain blocking call on paths; the bindings in
//! `dockyard-core` (`py_union.rs`) release the GIL around them.

pub mod btrfs;
pub mod copy;
pub mod copyup;
mod error;
pub mod fstype;
pub mod overlay;
mod sys;

pub use btrfs::{is_subvolume as is_btrfs_subvolume, subvolume_create, subvolume_delete, subvolume_snapshot};
pub use copy::{copy_into, copy_tree, Policy, XattrRule};
pub use copyup::{copy_up, CopyUp};
pub use error::{Error, Result};
pub use fstype::{fs_magic, fs_type, supports_d_type};
pub use overlay::{mount_overlay, mount_tmpfs, unmount};
