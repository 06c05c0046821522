//! The sObjects the simulator knows, with the fields, types, key prefixes and rules that
//! Salesforce applies to them.

/// How a field's value is stored and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldType {
    Id,
    /// A lookup to another record (any of the listed objects when polymorphic).
    Reference,
    String(usize),
    TextArea(usize),
    Email,
    Phone,
    Boolean,
    Int,
    DateTime,
    Date,
    Picklist(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    /// Required on create (REQUIRED_FIELD_MISSING otherwise).
    pub required: bool,
    /// The client may set it (system fields and formulas are read-only).
    pub writable: bool,
    /// Usable as the key of an upsert.
    pub external_id: bool,
}

#[derive(Debug)]
pub(super) struct ObjectDef {
    pub name: &'static str,
    pub prefix: &'static str,
    pub fields: Vec<FieldDef>,
}

impl ObjectDef {
    pub(super) fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

const fn f(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        ty,
        required: false,
        writable: true,
        external_id: false,
    }
}

const fn required(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        ty,
        required: true,
        writable: true,
        external_id: false,
    }
}

const fn system(name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        name,
        ty,
        required: false,
        writable: false,
        external_id: false,
    }
}

const fn external(name: &'static str) -> FieldDef {
    FieldDef {
        name,
        ty: FieldType::String(255),
        required: false,
        writable: true,
        external_id: true,
    }
}

/// An external id that is not unique (as one migrated from another system may be): an
/// upsert on a value several records share answers 300 Multiple Choices.
pub(super) const SHARED_EXTERNAL_ID_FIELD: &str = "Legacy_Id__c";

/// The custom `User` field the simulator's org holds a mailbox address in.
pub const USER_MAILBOX_FIELD: &str = "Exchange_Mailbox__c";

/// The external id the connector upserts on (a custom field an admin adds in a real org).
pub const EXTERNAL_ID_FIELD: &str = "Exsync_Id__c";

const SHOW_AS: &[&str] = &["Busy", "Free", "OutOfOffice", "WorkingElsewhere"];
const LEAD_STATUS: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];
const RELATION_STATUS: &[&str] = &["New", "Accepted", "Declined"];

fn audit_fields() -> Vec<FieldDef> {
    vec![
        system("Id", FieldType::Id),
        system("IsDeleted", FieldType::Boolean),
        system("CreatedDate", FieldType::DateTime),
        system("CreatedById", FieldType::Reference),
        system("LastModifiedDate", FieldType::DateTime),
        system("LastModifiedById", FieldType::Reference),
        system("SystemModstamp", FieldType::DateTime),
    ]
}

fn address(prefix: &'static [&'static str; 5]) -> Vec<FieldDef> {
    vec![
        f(prefix[0], FieldType::TextArea(255)),
        f(prefix[1], FieldType::String(40)),
        f(prefix[2], FieldType::String(80)),
        f(prefix[3], FieldType::String(20)),
        f(prefix[4], FieldType::String(80)),
    ]
}

fn contact() -> ObjectDef {
    let mut fields = audit_fields();
    fields.extend([
        f("OwnerId", FieldType::Reference),
        f("AccountId", FieldType::Reference),
        system("MasterRecordId", FieldType::Reference),
        f("Salutation", FieldType::String(40)),
        f("FirstName", FieldType::String(40)),
        f("MiddleName", FieldType::String(40)),
        required("LastName", FieldType::String(80)),
        system("Name", FieldType::String(121)),
        f("Email", FieldType::Email),
        f("Phone", FieldType::Phone),
        f("MobilePhone", FieldType::Phone),
        f("HomePhone", FieldType::Phone),
        f("OtherPhone", FieldType::Phone),
        f("Fax", FieldType::Phone),
        f("AssistantPhone", FieldType::Phone),
        f("Title", FieldType::String(128)),
        f("Department", FieldType::String(80)),
        f("Birthdate", FieldType::Date),
        f("Description", FieldType::TextArea(32000)),
        external(EXTERNAL_ID_FIELD),
        external(SHARED_EXTERNAL_ID_FIELD),
    ]);
    fields.extend(address(&[
        "MailingStreet",
        "MailingCity",
        "MailingState",
        "MailingPostalCode",
        "MailingCountry",
    ]));
    fields.extend(address(&[
        "OtherStreet",
        "OtherCity",
        "OtherState",
        "OtherPostalCode",
        "OtherCountry",
    ]));
    ObjectDef {
        name: "Contact",
        prefix: "003",
        fields,
    }
}

fn lead() -> ObjectDef {
    let mut fields = audit_fields();
    fields.extend([
        f("OwnerId", FieldType::Reference),
        f("FirstName", FieldType::String(40)),
        required("LastName", FieldType::String(80)),
        system("Name", FieldType::String(121)),
        required("Company", FieldType::String(255)),
        f("Email", FieldType::Email),
        f("Phone", FieldType::Phone),
        f("Title", FieldType::String(128)),
        f("Status", FieldType::Picklist(LEAD_STATUS)),
        external(EXTERNAL_ID_FIELD),
    ]);
    ObjectDef {
        name: "Lead",
        prefix: "00Q",
        fields,
    }
}

fn account() -> ObjectDef {
    let mut fields = audit_fields();
    fields.extend([
        f("OwnerId", FieldType::Reference),
        required("Name", FieldType::String(255)),
        f("Phone", FieldType::Phone),
        f("Website", FieldType::String(255)),
        f("Industry", FieldType::String(255)),
        f("BillingCity", FieldType::String(40)),
        f("BillingCountry", FieldType::String(80)),
        external(EXTERNAL_ID_FIELD),
    ]);
    ObjectDef {
        name: "Account",
        prefix: "001",
        fields,
    }
}

fn user() -> ObjectDef {
    let mut fields = audit_fields();
    fields.retain(|f| f.name != "IsDeleted");
    fields.extend([
        required("Username", FieldType::String(80)),
        required("Email", FieldType::Email),
        f("FirstName", FieldType::String(40)),
        required("LastName", FieldType::String(80)),
        system("Name", FieldType::String(121)),
        f("Alias", FieldType::String(8)),
        f("IsActive", FieldType::Boolean),
        required("ProfileId", FieldType::Reference),
        f("TimeZoneSidKey", FieldType::String(40)),
        f("FederationIdentifier", FieldType::String(512)),
        // A custom field an admin adds to name each user's mailbox when neither Email nor
        // Username does (the pairing rule `crm.mailbox_field` may point at it).
        f(USER_MAILBOX_FIELD, FieldType::Email),
    ]);
    ObjectDef {
        name: "User",
        prefix: "005",
        fields,
    }
}

fn profile() -> ObjectDef {
    let mut fields = audit_fields();
    fields.retain(|f| f.name != "IsDeleted");
    fields.extend([required("Name", FieldType::String(255))]);
    ObjectDef {
        name: "Profile",
        prefix: "00e",
        fields,
    }
}

fn event() -> ObjectDef {
    let mut fields = audit_fields();
    fields.extend([
        f("OwnerId", FieldType::Reference),
        f("WhoId", FieldType::Reference),
        f("WhatId", FieldType::Reference),
        f("Subject", FieldType::String(255)),
        f("Location", FieldType::String(255)),
        f("Description", FieldType::TextArea(32000)),
        f("StartDateTime", FieldType::DateTime),
        f("EndDateTime", FieldType::DateTime),
        f("ActivityDateTime", FieldType::DateTime),
        f("ActivityDate", FieldType::Date),
        f("DurationInMinutes", FieldType::Int),
        f("IsAllDayEvent", FieldType::Boolean),
        f("IsPrivate", FieldType::Boolean),
        f("ShowAs", FieldType::Picklist(SHOW_AS)),
        f("IsReminderSet", FieldType::Boolean),
        f("ReminderDateTime", FieldType::DateTime),
        f("IsRecurrence2", FieldType::Boolean),
        f("Recurrence2PatternText", FieldType::TextArea(1024)),
        f("Recurrence2PatternTimeZone", FieldType::String(255)),
        system("Recurrence2PatternVersion", FieldType::String(40)),
        system("IsRecurrence2Exclusion", FieldType::Boolean),
        system("IsRecurrence2Exception", FieldType::Boolean),
        system("IsChild", FieldType::Boolean),
        system("IsGroupEvent", FieldType::Boolean),
        external(EXTERNAL_ID_FIELD),
    ]);
    ObjectDef {
        name: "Event",
        prefix: "00U",
        fields,
    }
}

fn event_relation() -> ObjectDef {
    let mut fields = audit_fields();
    fields.extend([
        required("EventId", FieldType::Reference),
        required("RelationId", FieldType::Reference),
        f("IsInvitee", FieldType::Boolean),
        f("IsParent", FieldType::Boolean),
        f("IsWhat", FieldType::Boolean),
        f("Status", FieldType::Picklist(RELATION_STATUS)),
        f("Response", FieldType::String(255)),
        f("RespondedDate", FieldType::DateTime),
    ]);
    ObjectDef {
        name: "EventRelation",
        prefix: "0RE",
        fields,
    }
}

/// Every object the simulator serves.
pub(super) struct Schema {
    pub objects: Vec<ObjectDef>,
}

impl Schema {
    pub(super) fn standard() -> Schema {
        Schema {
            objects: vec![
                contact(),
                lead(),
                account(),
                user(),
                profile(),
                event(),
                event_relation(),
            ],
        }
    }

    pub(super) fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub(super) fn object_for_id(&self, id: &str) -> Option<&ObjectDef> {
        let prefix = id.get(..3)?;
        self.objects.iter().find(|o| o.prefix == prefix)
    }
}

/// The relationship name's id field: `Account` → `AccountId`, `Owner` → `OwnerId`,
/// `Foo__r` → `Foo__c`.
pub(super) fn reference_field_for(relationship: &str) -> String {
    match relationship.strip_suffix("__r") {
        Some(base) => format!("{base}__c"),
        None => format!("{relationship}Id"),
    }
}

/// Salesforce's 3-character case-safe suffix that turns a 15-character id into 18 characters.
pub(super) fn case_safe_suffix(id15: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let bytes = id15.as_bytes();
    let mut out = String::with_capacity(3);
    for chunk in 0..3 {
        let mut bits = 0usize;
        for i in 0..5 {
            if bytes.get(chunk * 5 + i).is_some_and(u8::is_ascii_uppercase) {
                bits |= 1 << i;
            }
        }
        out.push(char::from(ALPHABET[bits]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_safe_suffix_matches_a_known_id() {
        // A documented pair: 001A0000006Vm9r → 001A0000006Vm9rIAC.
        assert_eq!(case_safe_suffix("001A0000006Vm9r"), "IAC");
    }

    #[test]
    fn relationship_names_map_to_id_fields() {
        assert_eq!(reference_field_for("Account"), "AccountId");
        assert_eq!(reference_field_for("Parent__r"), "Parent__c");
    }
}
