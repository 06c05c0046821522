//! `openapi.json` describes exactly the API the router serves: the same paths and methods,
//! and the same role for each.

use std::collections::BTreeMap;

use exsync_console::routes::{Access, ROUTES};

fn role_text(access: Access) -> String {
    match access {
        Access::Public => "public".to_owned(),
        Access::LoggedIn => "logged_in".to_owned(),
        Access::Role(r) => r.as_str().to_owned(),
    }
}

#[test]
fn the_openapi_file_matches_the_routes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../exsync-console/openapi.json"
    );
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented = BTreeMap::new();
    for (p, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let role = op["x-required-role"]
                .as_str()
                .unwrap_or("(missing)")
                .to_owned();
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {p}"
            );
            documented.insert((method.to_uppercase(), p.clone()), role);
        }
    }
    let served: BTreeMap<(String, String), String> = ROUTES
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .map(|r| {
            (
                (r.method.to_owned(), r.path.to_owned()),
                role_text(r.access),
            )
        })
        .collect();
    let missing: Vec<_> = served
        .keys()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    let extra: Vec<_> = documented
        .keys()
        .filter(|k| !served.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "served but not in openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in openapi.json but not served: {extra:?}"
    );
    for (key, role) in &served {
        assert_eq!(&documented[key], role, "role of {key:?}");
    }
}
