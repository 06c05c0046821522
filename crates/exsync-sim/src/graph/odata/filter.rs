//! The part of OData `$filter` the Outlook stores answer: string comparisons of simple
//! properties, `startswith`/`contains`, lambdas over `singleValueExtendedProperties` and
//! `emailAddresses`, joined by `and`/`or`/`not` and parentheses. Anything else is refused
//! with the 400 Graph gives, never guessed at.
//!
//! The input is hostile: its length, its token count and its nesting are bounded, and the
//! recursive-descent parser carries its depth.

use serde_json::{Map, Value};

use super::extended::{canonical_id, ExtendedProps};
use crate::graph::call::Answer;

const MAX_FILTER_LEN: usize = 8 * 1024;
const MAX_TOKENS: usize = 512;
/// Deepest nesting of parentheses, `not` and lambdas together.
const MAX_DEPTH: usize = 16;

/// 400 for a filter Outlook cannot run (well-formed but unsupported, or malformed).
pub(crate) fn invalid_filter(message: &str) -> Answer {
    Answer::error(400, "ErrorInvalidUrlQueryFilter", message)
}

fn syntax(message: &str) -> Answer {
    Answer::error(
        400,
        "BadRequest",
        &format!("Invalid filter clause: {message}"),
    )
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A name, a path (`ep/id`, `singleValueExtendedProperties/any`) or a keyword.
    Ident(String),
    /// A string literal with its `''` escapes undone.
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
}

pub(crate) struct Lexer;

impl Lexer {
    pub(crate) fn tokens(raw: &str) -> Result<Vec<Tok>, Answer> {
        if raw.len() > MAX_FILTER_LEN {
            return Err(invalid_filter("The $filter is too long."));
        }
        let mut tokens = Vec::new();
        let mut chars = raw.chars().peekable();
        while let Some(&c) = chars.peek() {
            if tokens.len() > MAX_TOKENS {
                return Err(invalid_filter("The $filter has too many terms."));
            }
            match c {
                c if c.is_whitespace() => {
                    chars.next();
                }
                '(' | ')' | ',' | ':' => {
                    chars.next();
                    tokens.push(match c {
                        '(' => Tok::Open,
                        ')' => Tok::Close,
                        ',' => Tok::Comma,
                        _ => Tok::Colon,
                    });
                }
                '\'' => {
                    chars.next();
                    let mut text = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(syntax("a string literal is not closed.")),
                            Some('\'') if chars.peek() == Some(&'\'') => {
                                chars.next();
                                text.push('\'');
                            }
                            Some('\'') => break,
                            Some(c) => text.push(c),
                        }
                    }
                    tokens.push(Tok::Str(text));
                }
                c if c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '@' | '-' | '+') => {
                    let mut text = String::new();
                    while let Some(&c) = chars.peek() {
                        if c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '@' | '-' | '+') {
                            text.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    tokens.push(Tok::Ident(text));
                }
                other => return Err(syntax(&format!("unexpected character '{other}'."))),
            }
        }
        Ok(tokens)
    }
}

/// Which field of what a string test reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    /// A top-level string property of the item (its name as the item spells it).
    Prop(String),
    /// `ep/value` inside `singleValueExtendedProperties/any`.
    ExtValue,
    /// `a/address` / `a/name` inside `emailAddresses/any`.
    EmailAddress,
    EmailName,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Eq(String),
    Ne(String),
    StartsWith(String),
    Contains(String),
    /// `eq null` (true) / `ne null` (false): whether the property is absent.
    Null(bool),
}

impl Test {
    /// Strings compare without regard to case: Graph documents it for extended property
    /// values ("Filtering the value property of an extended property is case-insensitive",
    /// singlevaluelegacyextendedproperty-get) and Exchange's collation does the same for
    /// the other string properties. Two CRM ids that differ only in case (Salesforce's
    /// 15-character ids) therefore both match; a client must check what it gets back.
    fn passes(&self, value: Option<&str>) -> bool {
        match self {
            Test::Eq(v) => value.is_some_and(|s| same_text(s, v)),
            Test::Ne(v) => !value.is_some_and(|s| same_text(s, v)),
            Test::StartsWith(v) => {
                value.is_some_and(|s| s.to_lowercase().starts_with(&v.to_lowercase()))
            }
            Test::Contains(v) => {
                value.is_some_and(|s| s.to_lowercase().contains(&v.to_lowercase()))
            }
            Test::Null(absent) => value.is_none() == *absent,
        }
    }
}

/// Equality without regard to case and without allocating: a filtered list compares every
/// item, so this is the hot path of a lookup by CRM id.
fn same_text(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Str(Field, Test),
    /// `ep/id eq '…'` (canonical id) — or `ne` when `equal` is false.
    ExtId {
        key: String,
        equal: bool,
    },
    AnyExtended(Box<Filter>),
    AnyEmail(Box<Filter>),
}

/// What a store lets `$filter` name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema<'a> {
    /// Top-level string properties that may be compared.
    pub(crate) strings: &'a [&'a str],
    /// Whether `emailAddresses/any(…)` is allowed (contacts).
    pub(crate) email_addresses: bool,
}

/// The scope an expression is parsed in: the item, or the body of a lambda over one
/// collection with its variable name.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Item,
    Extended(&'a str),
    Email(&'a str),
}

pub(crate) fn parse(raw: &str, schema: Schema<'_>) -> Result<Filter, Answer> {
    let tokens = Lexer::tokens(raw)?;
    if tokens.is_empty() {
        return Err(syntax("the $filter is empty."));
    }
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        schema,
    };
    let filter = parser.or(Scope::Item, 0)?;
    if parser.at != tokens.len() {
        return Err(syntax(&format!(
            "unexpected {} after a complete expression.",
            describe(tokens.get(parser.at))
        )));
    }
    Ok(filter)
}

fn describe(tok: Option<&Tok>) -> String {
    match tok {
        None => "end of the filter".to_owned(),
        Some(Tok::Ident(s)) => format!("'{s}'"),
        Some(Tok::Str(s)) => format!("the literal '{s}'"),
        Some(Tok::Open) => "'('".to_owned(),
        Some(Tok::Close) => "')'".to_owned(),
        Some(Tok::Comma) => "','".to_owned(),
        Some(Tok::Colon) => "':'".to_owned(),
    }
}

struct Parser<'t, 's> {
    tokens: &'t [Tok],
    at: usize,
    schema: Schema<'s>,
}

impl<'t> Parser<'t, '_> {
    fn peek(&self) -> Option<&'t Tok> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<&'t Tok> {
        let tok = self.tokens.get(self.at);
        self.at += 1;
        tok
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, want: Tok) -> Result<(), Answer> {
        match self.next() {
            Some(t) if *t == want => Ok(()),
            other => Err(syntax(&format!(
                "expected {} but found {}.",
                describe(Some(&want)),
                describe(other)
            ))),
        }
    }

    fn string(&mut self) -> Result<String, Answer> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s.clone()),
            other => Err(invalid_filter(&format!(
                "Only string literals in quotes can be compared here, not {}.",
                describe(other)
            ))),
        }
    }

    fn deeper(depth: usize) -> Result<usize, Answer> {
        if depth >= MAX_DEPTH {
            Err(invalid_filter("The $filter is nested too deeply."))
        } else {
            Ok(depth + 1)
        }
    }

    fn or(&mut self, scope: Scope<'t>, depth: usize) -> Result<Filter, Answer> {
        let mut left = self.and(scope, depth)?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.and(scope, depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, scope: Scope<'t>, depth: usize) -> Result<Filter, Answer> {
        let mut left = self.unary(scope, depth)?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.unary(scope, depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, scope: Scope<'t>, depth: usize) -> Result<Filter, Answer> {
        if self.keyword("not") {
            self.at += 1;
            let inner = self.unary(scope, Self::deeper(depth)?)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Tok::Open) {
            self.at += 1;
            let inner = self.or(scope, Self::deeper(depth)?)?;
            self.expect(Tok::Close)?;
            return Ok(inner);
        }
        let name = match self.next() {
            Some(Tok::Ident(name)) => name.as_str(),
            other => {
                return Err(syntax(&format!(
                    "expected a property or a function but found {}.",
                    describe(other)
                )))
            }
        };
        if self.peek() == Some(&Tok::Open) {
            if let Some((collection, lambda)) = name.rsplit_once('/') {
                if lambda.eq_ignore_ascii_case("any") {
                    return self.lambda(collection, scope, depth);
                }
            }
            return self.function(name, scope);
        }
        let field = self.field(name, scope)?;
        let op = match self.next() {
            Some(Tok::Ident(op)) => op.to_ascii_lowercase(),
            other => {
                return Err(syntax(&format!(
                    "expected eq or ne after '{name}' but found {}.",
                    describe(other)
                )))
            }
        };
        let equal = match op.as_str() {
            "eq" => true,
            "ne" => false,
            other => {
                return Err(invalid_filter(&format!(
                    "The operator '{other}' is not supported on '{name}'; use eq, ne or startswith."
                )))
            }
        };
        if matches!(self.peek(), Some(Tok::Ident(n)) if n.eq_ignore_ascii_case("null")) {
            self.at += 1;
            let Some(field) = field else {
                return Err(invalid_filter(
                    "An extended property's id cannot be compared with null.",
                ));
            };
            return Ok(Filter::Str(field, Test::Null(equal)));
        }
        let literal = self.string()?;
        Ok(match field {
            None => {
                let key = canonical_id(&literal).map_err(|m| invalid_filter(&m))?;
                Filter::ExtId { key, equal }
            }
            Some(field) => Filter::Str(
                field,
                if equal {
                    Test::Eq(literal)
                } else {
                    Test::Ne(literal)
                },
            ),
        })
    }

    /// Resolves a property path in a scope; `None` means `ep/id`, which compares ids.
    fn field(&self, name: &str, scope: Scope<'_>) -> Result<Option<Field>, Answer> {
        let unknown = || {
            invalid_filter(&format!(
                "The property '{name}' cannot be used in $filter here."
            ))
        };
        match scope {
            Scope::Item => self
                .schema
                .strings
                .iter()
                .find(|p| p.eq_ignore_ascii_case(name))
                .map(|p| Some(Field::Prop((*p).to_owned())))
                .ok_or_else(unknown),
            Scope::Extended(var) => match name.split_once('/') {
                Some((v, "id")) if v == var => Ok(None),
                Some((v, "value")) if v == var => Ok(Some(Field::ExtValue)),
                _ => Err(unknown()),
            },
            Scope::Email(var) => match name.split_once('/') {
                Some((v, "address")) if v == var => Ok(Some(Field::EmailAddress)),
                Some((v, "name")) if v == var => Ok(Some(Field::EmailName)),
                _ => Err(unknown()),
            },
        }
    }

    fn function(&mut self, name: &str, scope: Scope<'t>) -> Result<Filter, Answer> {
        let lower = name.to_ascii_lowercase();
        if lower != "startswith" && lower != "contains" {
            return Err(invalid_filter(&format!(
                "The function '{name}' is not supported; use startswith or contains."
            )));
        }
        self.expect(Tok::Open)?;
        let field = match self.next() {
            Some(Tok::Ident(path)) => self.field(path, scope)?,
            other => {
                return Err(syntax(&format!(
                    "{name} needs a property first, not {}.",
                    describe(other)
                )))
            }
        };
        let Some(field) = field else {
            return Err(invalid_filter(&format!(
                "{name} cannot be applied to an extended property's id."
            )));
        };
        self.expect(Tok::Comma)?;
        let literal = self.string()?;
        self.expect(Tok::Close)?;
        Ok(Filter::Str(
            field,
            if lower == "startswith" {
                Test::StartsWith(literal)
            } else {
                Test::Contains(literal)
            },
        ))
    }

    fn lambda(
        &mut self,
        collection: &str,
        scope: Scope<'t>,
        depth: usize,
    ) -> Result<Filter, Answer> {
        if !matches!(scope, Scope::Item) {
            return Err(invalid_filter("A lambda cannot be nested in another one."));
        }
        let extended = collection.eq_ignore_ascii_case("singleValueExtendedProperties");
        let email =
            self.schema.email_addresses && collection.eq_ignore_ascii_case("emailAddresses");
        if !extended && !email {
            return Err(invalid_filter(&format!(
                "'{collection}/any' is not supported in $filter here."
            )));
        }
        self.expect(Tok::Open)?;
        let var = match self.next() {
            Some(Tok::Ident(v)) if !v.contains('/') => v.as_str(),
            other => {
                return Err(syntax(&format!(
                    "expected a lambda variable but found {}.",
                    describe(other)
                )))
            }
        };
        self.expect(Tok::Colon)?;
        let inner_scope = if extended {
            Scope::Extended(var)
        } else {
            Scope::Email(var)
        };
        let body = self.or(inner_scope, Self::deeper(depth)?)?;
        self.expect(Tok::Close)?;
        Ok(if extended {
            Filter::AnyExtended(Box::new(body))
        } else {
            Filter::AnyEmail(Box::new(body))
        })
    }
}

/// What a lambda's variable is bound to while its body is evaluated.
#[derive(Clone, Copy)]
enum Bound<'a> {
    None,
    Extended { key: &'a str, value: &'a str },
    Email(&'a Value),
}

impl Filter {
    /// A condition every match must meet, `ep/id eq K and ep/value eq V` inside a
    /// `singleValueExtendedProperties/any` at the top level (alone or joined by `and`):
    /// `(K, V)`, so a store with an index can look the candidates up instead of scanning.
    pub(crate) fn extended_equality(&self) -> Option<(&str, &str)> {
        match self {
            Filter::And(a, b) => a.extended_equality().or_else(|| b.extended_equality()),
            Filter::AnyExtended(body) => match body.as_ref() {
                Filter::And(x, y) => match (x.as_ref(), y.as_ref()) {
                    (
                        Filter::ExtId { key, equal: true },
                        Filter::Str(Field::ExtValue, Test::Eq(v)),
                    )
                    | (
                        Filter::Str(Field::ExtValue, Test::Eq(v)),
                        Filter::ExtId { key, equal: true },
                    ) => Some((key.as_str(), v.as_str())),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether an item (its JSON and its extended properties) passes the filter. The AST's
    /// depth is bounded by the parser, so recursion here is bounded too.
    pub(crate) fn matches(&self, item: &Value, extended: &ExtendedProps) -> bool {
        match item {
            Value::Object(map) => self.eval(map, extended, Bound::None),
            _ => self.eval(&Map::new(), extended, Bound::None),
        }
    }

    /// [`Filter::matches`] on an item's properties as a map, for stores that keep them so
    /// and need not render each item to filter a list.
    pub(crate) fn matches_map(&self, item: &Map<String, Value>, extended: &ExtendedProps) -> bool {
        self.eval(item, extended, Bound::None)
    }

    fn eval(&self, item: &Map<String, Value>, extended: &ExtendedProps, bound: Bound<'_>) -> bool {
        match self {
            Filter::And(a, b) => a.eval(item, extended, bound) && b.eval(item, extended, bound),
            Filter::Or(a, b) => a.eval(item, extended, bound) || b.eval(item, extended, bound),
            Filter::Not(a) => !a.eval(item, extended, bound),
            Filter::Str(field, test) => {
                let value = match (field, bound) {
                    (Field::Prop(name), _) => item.get(name).and_then(Value::as_str),
                    (Field::ExtValue, Bound::Extended { value, .. }) => Some(value),
                    (Field::EmailAddress, Bound::Email(a)) => {
                        a.get("address").and_then(Value::as_str)
                    }
                    (Field::EmailName, Bound::Email(a)) => a.get("name").and_then(Value::as_str),
                    _ => None,
                };
                test.passes(value)
            }
            Filter::ExtId { key, equal } => match bound {
                Bound::Extended { key: k, .. } => (k == key) == *equal,
                _ => false,
            },
            Filter::AnyExtended(body) => extended.iter().any(|(key, p)| {
                body.eval(
                    item,
                    extended,
                    Bound::Extended {
                        key,
                        value: &p.value,
                    },
                )
            }),
            Filter::AnyEmail(body) => item
                .get("emailAddresses")
                .and_then(Value::as_array)
                .is_some_and(|list| {
                    list.iter()
                        .any(|a| body.eval(item, extended, Bound::Email(a)))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    const GUID: &str = "{8ECCC264-6880-4EBE-992F-8888D2EEAA1D}";
    const SCHEMA: Schema<'static> = Schema {
        strings: &["displayName", "givenName", "surname", "jobTitle"],
        email_addresses: true,
    };

    fn crm_id() -> String {
        format!("String {GUID} Name CrmId")
    }

    fn item_with(crm: &str) -> (Value, ExtendedProps) {
        let item = json!({"displayName": "Ann O'Neil", "givenName": "Ann", "surname": "O'Neil",
                          "emailAddresses": [{"name": "Ann", "address": "ann@contoso.test"}]});
        let mut props = ExtendedProps::default();
        props
            .apply(ExtendedProps::parse(&json!([{"id": crm_id(), "value": crm}])).unwrap())
            .unwrap();
        (item, props)
    }

    fn check(filter: &str, item: &(Value, ExtendedProps)) -> bool {
        parse(filter, SCHEMA)
            .unwrap_or_else(|e| panic!("{filter}: {e:?}"))
            .matches(&item.0, &item.1)
    }

    #[test]
    fn extended_property_lambda_finds_by_id_and_value() {
        let item = item_with("003ABC");
        let id = crm_id();
        assert!(check(
            &format!(
                "singleValueExtendedProperties/any(ep: ep/id eq '{id}' and ep/value eq '003ABC')"
            ),
            &item
        ));
        assert!(!check(
            &format!(
                "singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and ep/value eq '003XYZ')"
            ),
            &item
        ));
        // The same property spelled with a lower-case GUID and type.
        let respelled = format!("string {} Name CrmId", GUID.to_lowercase());
        assert!(check(
            &format!("singleValueExtendedProperties/any(x: x/id eq '{respelled}' and startswith(x/value,'003'))"),
            &item
        ));
        assert!(check(
            &format!(
                "singleValueExtendedProperties/any(ep: ep/id eq '{id}' and ep/value ne 'zzz')"
            ),
            &item
        ));
        let other = format!("String {GUID} Name Other");
        assert!(!check(
            &format!("singleValueExtendedProperties/any(ep: ep/id eq '{other}')"),
            &item
        ));
    }

    #[test]
    fn extended_property_lambda_reads_proptag_ids() {
        let (item, mut props) = item_with("003ABC");
        props
            .apply(
                ExtendedProps::parse(&json!([{"id": "String 0x3A24", "value": "ann@x.test"}]))
                    .unwrap(),
            )
            .unwrap();
        let item = (item, props);
        assert!(check(
            "singleValueExtendedProperties/any(ep: ep/id eq 'string 0x3a24' and ep/value eq 'ann@x.test')",
            &item
        ));
        assert!(!check(
            "singleValueExtendedProperties/any(ep: ep/id eq 'String 0x3A25')",
            &item
        ));
    }

    #[test]
    fn extended_equality_is_found_only_where_every_match_needs_it() {
        let id = crm_id();
        let key = canonical_id(&id).unwrap();
        let lookup =
            format!("singleValueExtendedProperties/any(ep: ep/id eq '{id}' and ep/value eq 'V')");
        let found = |f: &str| {
            parse(f, SCHEMA)
                .unwrap()
                .extended_equality()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        };
        assert_eq!(found(&lookup), Some((key.clone(), "V".to_owned())));
        assert_eq!(
            found(&format!("givenName eq 'a' and {lookup}")),
            Some((key.clone(), "V".to_owned()))
        );
        let reversed =
            format!("singleValueExtendedProperties/any(ep: ep/value eq 'V' and ep/id eq '{id}')");
        assert_eq!(found(&reversed), Some((key, "V".to_owned())));
        assert_eq!(found(&format!("givenName eq 'a' or {lookup}")), None);
        assert_eq!(found(&format!("not {lookup}")), None);
        assert_eq!(
            found(&format!(
                "singleValueExtendedProperties/any(ep: ep/id eq '{id}' and ep/value ne 'V')"
            )),
            None
        );
    }

    #[test]
    fn simple_properties_email_lambda_and_logic() {
        let item = item_with("1");
        assert!(check("displayName eq 'Ann O''Neil'", &item));
        assert!(check("surname eq 'o''neil'", &item));
        assert!(same_text("ÅSA Öberg", "åsa öberg"));
        assert!(!same_text("Åsa", "Asa"));
        assert!(check(
            "givenName eq 'Bob' or (surname ne 'X' and not (givenName eq 'Bob'))",
            &item
        ));
        assert!(!check("not givenName eq 'Ann'", &item));
        assert!(check("startswith(displayName,'ann')", &item));
        assert!(check(
            "emailAddresses/any(a: a/address eq 'ANN@contoso.test')",
            &item
        ));
        assert!(!check(
            "emailAddresses/any(a: a/address eq 'bob@contoso.test')",
            &item
        ));
        assert!(check("jobTitle eq null and givenName ne null", &item));
        assert!(!check("givenName eq null", &item));
        let id = crm_id();
        assert!(check(
            &format!("singleValueExtendedProperties/any(ep: ep/id eq '{id}' and ep/value ne null)"),
            &item
        ));
        let bare = (json!({"givenName": "Ann"}), ExtendedProps::default());
        assert!(check("surname ne 'x'", &bare));
        assert!(!check("emailAddresses/any(a: a/address eq 'x')", &bare));
    }

    #[test]
    fn unsupported_or_malformed_filters_are_400() {
        let id = crm_id();
        for bad in [
            "",
            "displayName",
            "displayName eq",
            "displayName eq 3",
            "displayName gt 'a'",
            "nickname eq 'a'",
            "displayName eq 'a",
            "(displayName eq 'a'",
            "displayName eq 'a')",
            "endswith(displayName,'a')",
            "startswith(displayName 'a')",
            "categories/any(c: c eq 'a')",
            "singleValueExtendedProperties/any(ep: ep/name eq 'a')",
            "singleValueExtendedProperties/any(ep: ep/id eq 'bogus')",
            "singleValueExtendedProperties/any(ep: startswith(ep/id,'String'))",
            "emailAddresses/any(a: emailAddresses/any(b: b/address eq 'x'))",
            "displayName eq 'a' ; drop",
            "singleValueExtendedProperties/any(ep: ep/id eq null)",
            &format!("singleValueExtendedProperties/any(ep: x/id eq '{id}')"),
        ] {
            let err = parse(bad, SCHEMA).unwrap_err();
            assert_eq!(err.status, 400, "{bad}");
        }
        let no_email = Schema {
            strings: &["subject"],
            email_addresses: false,
        };
        assert!(parse("emailAddresses/any(a: a/address eq 'x')", no_email).is_err());
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep = format!("{}givenName eq 'a'{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(parse(&deep, SCHEMA).unwrap_err().status, 400);
        let nots = format!("{}givenName eq 'a'", "not ".repeat(200));
        assert_eq!(parse(&nots, SCHEMA).unwrap_err().status, 400);
        let shallow = format!("{}givenName eq 'a'{}", "(".repeat(5), ")".repeat(5));
        assert!(parse(&shallow, SCHEMA).is_ok());
        let long = vec!["givenName eq 'a'"; 400].join(" or ");
        assert_eq!(parse(&long, SCHEMA).unwrap_err().status, 400);
        let huge = format!("givenName eq '{}'", "a".repeat(MAX_FILTER_LEN));
        assert_eq!(parse(&huge, SCHEMA).unwrap_err().status, 400);
    }
}
