//! The MAPI named properties exsync tags mailbox items with. EWS (`ExtendedFieldURI`) and
//! Microsoft Graph (`singleValueExtendedProperties`) address the same property set, so an
//! item keeps its tags, and its link to the CRM, when its mailbox moves from on-premises
//! Exchange to Exchange Online.

/// Our own property set: every extended property exsync writes lives in it, so nothing another
/// application stores can collide with ours. Never change it: existing links live in it.
pub const PROPERTY_SET_ID: &str = "8c3d6f0e-5b1a-4e7d-9a62-3f4b2c1e7d95";

/// The CRM record id an item was created from.
pub const CRM_ID_PROPERTY: &str = "CrmId";

/// The IANA zone an event was written with, which Windows zone ids cannot carry exactly.
pub const TIME_ZONE_PROPERTY: &str = "IanaTimeZone";
