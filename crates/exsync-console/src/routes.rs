//! Every route the console serves and who may call it. The guard middleware looks each
//! request up here (an unlisted route is refused), the OpenAPI test compares the `/api/`
//! entries with `openapi.json`, and the role test walks the whole list.

use exsync_store::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (the login form and login call, the stylesheet and script).
    Public,
    /// Anyone logged in, whatever their role.
    LoggedIn,
    /// This role or a stronger one.
    Role(Role),
}

/// One route of [`ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The HTTP method in upper case; a HEAD request is looked up as GET.
    pub method: &'static str,
    /// In axum's (and OpenAPI's) `{param}` syntax.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

const ADMIN: Access = Access::Role(Role::Admin);
const OPERATOR: Access = Access::Role(Role::Operator);
const VIEWER: Access = Access::Role(Role::Viewer);

/// Every route the console serves: the JSON API under `/api/`, then the pages and assets.
/// A route served but missing here is refused for everyone.
pub const ROUTES: &[RouteSpec] = &[
    // JSON API
    r("POST", "/api/login", Access::Public),
    r("POST", "/api/logout", Access::LoggedIn),
    r("GET", "/api/me", VIEWER),
    r("GET", "/api/sync", VIEWER),
    r("PUT", "/api/sync", ADMIN),
    r("GET", "/api/service-account", ADMIN),
    r("PUT", "/api/service-account", ADMIN),
    r("GET", "/api/exchange-online", ADMIN),
    r("PUT", "/api/exchange-online", ADMIN),
    r("GET", "/api/crm", ADMIN),
    r("PUT", "/api/crm", ADMIN),
    r("GET", "/api/configurations", ADMIN),
    r("POST", "/api/configurations", ADMIN),
    r("PUT", "/api/configurations/{name}", ADMIN),
    r("GET", "/api/assignment", ADMIN),
    r("GET", "/api/users", VIEWER),
    r("GET", "/api/skipped-users", VIEWER),
    r("GET", "/api/unmatched-users", VIEWER),
    r("GET", "/api/users/{user}", VIEWER),
    r("POST", "/api/users/{user}/reset", OPERATOR),
    r("POST", "/api/users/{user}/test", OPERATOR),
    r("GET", "/api/users/{user}/conflicts", VIEWER),
    r("GET", "/api/audit", VIEWER),
    // Pages
    r("GET", "/login", Access::Public),
    r("POST", "/login", Access::Public),
    r("POST", "/logout", Access::LoggedIn),
    r("GET", "/", VIEWER),
    r("POST", "/sync", ADMIN),
    r("GET", "/service-account", ADMIN),
    r("POST", "/service-account", ADMIN),
    r("GET", "/exchange-online", ADMIN),
    r("POST", "/exchange-online", ADMIN),
    r("GET", "/crm", ADMIN),
    r("POST", "/crm", ADMIN),
    r("GET", "/configurations", ADMIN),
    r("POST", "/configurations", ADMIN),
    r("POST", "/configurations/{name}", ADMIN),
    r("GET", "/users/{user}", VIEWER),
    r("POST", "/users/{user}/reset", OPERATOR),
    r("POST", "/users/{user}/test", OPERATOR),
    r("GET", "/users/{user}/conflicts", VIEWER),
    r("GET", "/audit", VIEWER),
    // The stylesheet and script every page links, the login page included.
    r("GET", "/assets/console.css", Access::Public),
    r("GET", "/assets/console.js", Access::Public),
];

/// Who may call `method` on the route template `path` (as axum matched it, with `{param}`s);
/// `None` when the route is not listed.
pub fn lookup(method: &str, path: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|r| r.method == method && r.path == path)
        .map(|r| r.access)
}

/// Whether `path` belongs to the JSON API, whose refusals are JSON rather than an HTML page.
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}
