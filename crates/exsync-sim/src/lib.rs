//! exsync-sim
