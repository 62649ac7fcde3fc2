//! Storage driver primitives for Dockyard: overlay mounts, btrfs subvolumes and
//! exact tree copies. No Python here.
