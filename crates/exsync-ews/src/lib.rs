//! exsync-ews
