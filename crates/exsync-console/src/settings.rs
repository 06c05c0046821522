//! Settings that live in `exsync.toml` (the single source of truth for them) are changed by
//! editing that file in place: comments and layout survive (toml_edit), the edited text is
//! checked by the same loader the service uses before it replaces the file, and edits are
//! serialised so two admins cannot lose each other's change.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use exsync_core::config::{load, parse, ConfigErrors, ExsyncConfig};
use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::error::ConsoleError;

/// `exsync.toml` as the console reads and edits it; one per console, so that its edits are
/// serialised.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    lock: Mutex<()>,
}

impl ConfigFile {
    /// The file at `path`; nothing is read until [`Self::load`] or [`Self::edit`].
    pub fn new(path: PathBuf) -> ConfigFile {
        ConfigFile {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration as the service would load it; an unreadable or invalid file is a 500.
    pub fn load(&self) -> Result<ExsyncConfig, ConsoleError> {
        load(&self.path).map_err(|e| ConsoleError::internal(format!("{e}")))
    }

    /// Applies `change` to the file; nothing is written unless the result passes the
    /// configuration check, whose problems come back as a 400.
    pub fn edit(
        &self,
        change: impl FnOnce(&mut DocumentMut) -> Result<(), ConsoleError>,
    ) -> Result<ExsyncConfig, ConsoleError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            ConsoleError::internal(format!("cannot read {}: {e}", self.path.display()))
        })?;
        let mut doc: DocumentMut = text.parse().map_err(|e| {
            ConsoleError::internal(format!("{} is not valid TOML: {e}", self.path.display()))
        })?;
        change(&mut doc)?;
        let new_text = doc.to_string();
        let checked = parse(&new_text, &self.path).map_err(|e| {
            ConsoleError::bad_request(format!("the change was not saved: {}", problems(&e)))
        })?;
        let tmp = self.path.with_extension("toml.console-edit");
        std::fs::write(&tmp, new_text.as_bytes())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                ConsoleError::internal(format!("cannot write {}: {e}", self.path.display()))
            })?;
        Ok(checked)
    }
}

/// The loader's problems as it writes them (`FILE:LINE: KEY: reason`), but with the file's
/// name only: the directory it sits in is the server's business.
fn problems(errors: &ConfigErrors) -> String {
    errors
        .iter()
        .map(|e| {
            let mut shown = e.clone();
            shown.file = e.file.file_name().map(PathBuf::from).unwrap_or_default();
            shown.to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The table at `path`, created (and marked implicit, so no empty header is printed) when
/// missing.
pub(crate) fn table_at<'a>(
    doc: &'a mut DocumentMut,
    path: &[&str],
) -> Result<&'a mut Table, ConsoleError> {
    let mut table = doc.as_table_mut();
    for (depth, segment) in path.iter().enumerate() {
        let item = table.entry(segment).or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(depth + 1 < path.len());
            Item::Table(t)
        });
        table = item.as_table_mut().ok_or_else(|| {
            ConsoleError::bad_request(format!(
                "`{}` in the configuration file is not a [table]; edit the file by hand",
                path[..=depth].join(".")
            ))
        })?;
    }
    Ok(table)
}

/// Sets `key`, keeping the comments around an existing entry: replacing the entry would drop
/// the comment lines above it, which belong to the key.
fn put(table: &mut Table, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        Some(other) => *other = Item::Value(value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

pub(crate) fn set_str(table: &mut Table, key: &str, value: Option<&str>) {
    match value {
        Some(v) => put(table, key, Value::from(v)),
        None => {
            table.remove(key);
        }
    }
}

/// Sets `key` to `value`, or removes it (so the default applies) when `None`.
pub(crate) fn set_value(table: &mut Table, key: &str, value: Option<Value>) {
    match value {
        Some(v) => put(table, key, v),
        None => {
            table.remove(key);
        }
    }
}

pub(crate) fn set_bool(table: &mut Table, key: &str, value: bool) {
    put(table, key, Value::from(value));
}

pub(crate) fn set_list(table: &mut Table, key: &str, values: &[String]) {
    let mut array = Array::new();
    for v in values {
        array.push(v.as_str());
    }
    put(table, key, Value::Array(array));
}
