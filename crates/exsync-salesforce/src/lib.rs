//! exsync-salesforce
