//! exsync-store
