//! Reading a parsed TOML document key by key while keeping every key's position, so that all
//! problems are collected (serde would stop at the first) and each one names its line.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::ConfigError;

/// Collects problems while sections are read.
pub(crate) struct Reader {
    file: PathBuf,
    base_dir: PathBuf,
    line_starts: Vec<usize>,
    pub(crate) errors: Vec<ConfigError>,
}

/// A table and where it sits.
pub(crate) struct Tbl<'a, 'i> {
    pub(crate) path: String,
    pub(crate) line: Option<usize>,
    pub(crate) map: &'a DeTable<'i>,
}

/// One key's value and where it sits.
pub(crate) struct Item<'a, 'i> {
    pub(crate) key: String,
    pub(crate) key_line: usize,
    pub(crate) value_line: usize,
    pub(crate) value: &'a DeValue<'i>,
}

/// Key names that hold secrets. Secrets go to the vault, never into a file that is copied
/// around, checked into version control and shown by `exsync config show`.
fn is_secret_key(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "private_key",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "master_key",
    ];
    EXACT.contains(&name.as_str())
        || name.ends_with("_password")
        || name.ends_with("_secret")
        || name.ends_with("_token")
}

pub(crate) const SECRET_REASON: &str =
    "secrets do not belong in the configuration file; store it in the vault with `exsync secrets set` instead";

/// Appends a key to a dotted path, quoting it when it is not a bare TOML key.
pub(crate) fn join(path: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let segment = if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    };
    if path.is_empty() {
        segment
    } else {
        format!("{path}.{segment}")
    }
}

/// Edit distance counting a swap of two neighbours as one edit (the commonest typo), for
/// suggesting the key the admin probably meant.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, when it is close enough to be a likely typo.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (distance(&lower, c), *c))
        .filter(|(d, c)| {
            *d <= (lower.len().max(c.len()) / 3).max(1)
                || (lower.len() >= 4 && (c.contains(lower.as_str()) || lower.contains(c)))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or the list of choices.
pub(crate) fn hint(word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("expected one of: {}", candidates.join(", ")),
    }
}

fn a_type(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "true/false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

fn as_i128(value: &DeValue<'_>) -> Option<i128> {
    match value {
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i128::from_str_radix(&digits, i.radix()).ok()
        }
        _ => None,
    }
}

impl Reader {
    pub(crate) fn new(file: &Path, base_dir: &Path, text: &str) -> Reader {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Reader {
            file: file.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            line_starts,
            errors: Vec::new(),
        }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    pub(crate) fn error(&mut self, key: &str, line: Option<usize>, reason: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            key: key.to_owned(),
            line,
            reason: reason.into(),
        });
    }

    pub(crate) fn syntax_error(&mut self, span: Option<Range<usize>>, message: &str) {
        let line = span.map(|s| self.line(s.start));
        let reason = message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        self.error("", line, format!("not valid TOML: {reason}"));
    }

    /// A path from the file, relative ones taken from the file's directory.
    pub(crate) fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Reports keys this table does not have, and secrets written into it.
    pub(crate) fn check_keys(&mut self, table: &Tbl<'_, '_>, known: &[&str]) {
        for (key, _) in table.map.iter() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let path = join(&table.path, name);
            let line = Some(self.line(key.span().start));
            if is_secret_key(name) {
                self.error(&path, line, SECRET_REASON);
            } else {
                let quoted = join("", name);
                let reason = match closest(name, known) {
                    Some(c) => format!("unknown key `{quoted}`; did you mean `{c}`?"),
                    None if known.is_empty() => format!("unknown key `{quoted}`"),
                    None => format!(
                        "unknown key `{quoted}`; valid keys here: {}",
                        known.join(", ")
                    ),
                };
                self.error(&path, line, reason);
            }
        }
    }

    pub(crate) fn item<'a, 'i>(&self, table: &Tbl<'a, 'i>, name: &str) -> Option<Item<'a, 'i>> {
        let (key, value) = table.map.get_key_value(name)?;
        Some(self.make_item(join(&table.path, name), key, value))
    }

    pub(crate) fn make_item<'a, 'i>(
        &self,
        key: String,
        key_span: &Spanned<std::borrow::Cow<'i, str>>,
        value: &'a Spanned<DeValue<'i>>,
    ) -> Item<'a, 'i> {
        Item {
            key,
            key_line: self.line(key_span.span().start),
            value_line: self.line(value.span().start),
            value: value.get_ref(),
        }
    }

    pub(crate) fn wrong_type(&mut self, item: &Item<'_, '_>, expected: &str) {
        let found = a_type(item.value);
        self.error(
            &item.key,
            Some(item.value_line),
            format!("expected {expected}, found {found}"),
        );
    }

    pub(crate) fn missing(&mut self, table: &Tbl<'_, '_>, name: &str, what: &str) {
        self.error(
            &join(&table.path, name),
            table.line,
            format!("missing: {what}"),
        );
    }

    /// The sub-table under `name`, if present and a table.
    pub(crate) fn sub<'a, 'i>(&mut self, parent: &Tbl<'a, 'i>, name: &str) -> Option<Tbl<'a, 'i>> {
        let item = self.item(parent, name)?;
        let map = self.table(&item)?;
        Some(Tbl {
            line: Some(item.key_line),
            path: item.key,
            map,
        })
    }

    pub(crate) fn table<'a, 'i>(&mut self, item: &Item<'a, 'i>) -> Option<&'a DeTable<'i>> {
        match item.value {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(item, "a table");
                None
            }
        }
    }

    /// A string, refused when it is a pasted private key.
    pub(crate) fn string(&mut self, item: &Item<'_, '_>) -> Option<String> {
        match item.value {
            DeValue::String(s) => {
                if s.contains("-----BEGIN") && s.contains("PRIVATE KEY") {
                    self.error(&item.key, Some(item.value_line), SECRET_REASON);
                    return None;
                }
                Some(s.to_string())
            }
            _ => {
                self.wrong_type(item, "a string");
                None
            }
        }
    }

    /// A string that must not be blank.
    pub(crate) fn text(&mut self, item: &Item<'_, '_>) -> Option<String> {
        let s = self.string(item)?;
        if s.trim().is_empty() {
            self.error(&item.key, Some(item.value_line), "must not be empty");
            return None;
        }
        Some(s.trim().to_owned())
    }

    pub(crate) fn boolean(&mut self, item: &Item<'_, '_>) -> Option<bool> {
        match item.value {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(item, "true or false");
                None
            }
        }
    }

    /// A whole number in `min..=max`; `unit` ends the range message ("days", "").
    pub(crate) fn integer(
        &mut self,
        item: &Item<'_, '_>,
        min: u64,
        max: u64,
        unit: &str,
    ) -> Option<u64> {
        let Some(n) = as_i128(item.value) else {
            self.wrong_type(item, "an integer");
            return None;
        };
        if n < i128::from(min) || n > i128::from(max) {
            let unit = if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            };
            self.error(
                &item.key,
                Some(item.value_line),
                format!("must be between {min} and {max}{unit}, found {n}"),
            );
            return None;
        }
        u64::try_from(n).ok()
    }

    /// A share written as a number between 0 and 1 (`0.25` is a quarter).
    pub(crate) fn share(&mut self, item: &Item<'_, '_>, allow_one: bool) -> Option<f64> {
        let n = match item.value {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(_) => as_i128(item.value).map(|n| n as f64),
            _ => None,
        };
        let Some(n) = n else {
            self.wrong_type(item, "a number between 0 and 1");
            return None;
        };
        let upper_ok = if allow_one { n <= 1.0 } else { n < 1.0 };
        if !(n >= 0.0 && upper_ok) {
            let range = if allow_one {
                "between 0 and 1"
            } else {
                "at least 0 and below 1"
            };
            self.error(
                &item.key,
                Some(item.value_line),
                format!("must be a share {range} (0.5 means 50%), found {n}"),
            );
            return None;
        }
        Some(n)
    }

    /// One of a fixed set of words.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        item: &Item<'_, '_>,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(item)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let reason = match closest(&s, &names) {
            Some(c) => format!("`{s}` is not {what}; did you mean `{c}`?"),
            None => format!("`{s}` is not {what}; expected one of: {}", names.join(", ")),
        };
        self.error(&item.key, Some(item.value_line), reason);
        None
    }

    /// A list of strings, each with its own line.
    pub(crate) fn string_list(&mut self, item: &Item<'_, '_>) -> Option<Vec<(String, usize)>> {
        let DeValue::Array(array) = item.value else {
            self.wrong_type(item, "a list of strings");
            return None;
        };
        let mut out = Vec::new();
        for element in array.iter() {
            let line = self.line(element.span().start);
            match element.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), line)),
                other => {
                    let found = a_type(other);
                    self.error(
                        &item.key,
                        Some(line),
                        format!("expected a list of strings, found {found} in it"),
                    );
                }
            }
        }
        Some(out)
    }
}
