//! The search by tag (FindItem with an equality, or an `Or` of them, on our extended
//! property) validates against Microsoft's EWS schema, in the sync folder and in the
//! distinguished folders deleted items go to, carries CRM ids with XML specials intact, and
//! asks for each item's creation time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use exsync_core::CrmId;
use exsync_ews::testing::{envelope, items};
use exsync_ews::{DeletedFolder, FolderRef, SearchFolder};

#[test]
fn searches_by_tag_are_schema_valid() {
    let dir = tempfile::tempdir().unwrap();
    let folder = SearchFolder::Folder(FolderRef {
        id: "AAMkFolder=".into(),
        change_key: "AQ".into(),
        distinguished: false,
    });
    let one = [CrmId::new("003000000000001AAA")];
    let many: Vec<CrmId> = (0..items::TAGS_PER_FIND)
        .map(|i| CrmId::new(format!("003<&\"'>{i}")))
        .collect();
    let mut bodies = vec![
        ("one", items::find_by_tags(&folder, &one, 0, 200)),
        ("many", items::find_by_tags(&folder, &many, 400, 200)),
    ];
    for place in DeletedFolder::ALL {
        assert!(place.available(), "{place:?}");
        bodies.push((
            place.distinguished_id(),
            items::find_by_tags(&SearchFolder::Deleted(place), &many, 0, 200),
        ));
    }
    for (name, body) in &bodies {
        assert!(
            body.contains(r#"<t:FieldURI FieldURI="item:DateTimeCreated"/>"#),
            "{name}: {body}"
        );
        std::fs::write(
            dir.path().join(format!("{name}.xml")),
            envelope("ann@contoso.test", body),
        )
        .unwrap();
    }
    if let Some(checked) = exsync_testkit::schema::validate_requests(dir.path()) {
        assert_eq!(checked, bodies.len());
    }
}
