//! Problems found in a configuration file, each tied to the file, the dotted key and the line,
//! so an admin can go straight to the spot.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file the problem is in, as the path was given to the loader.
    pub file: PathBuf,
    /// Dotted key, e.g. `configurations.sales.events.past_days`; empty for problems that are
    /// about the file as a whole (a syntax error, an unreadable file).
    pub key: String,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// What is wrong and, where it helps, what would be accepted instead.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    /// `FILE:LINE: KEY: reason`, leaving out the parts that are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one file, in the order they appear in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single problem about the whole file, such as a file that cannot be read.
    pub fn whole_file(file: &Path, reason: impl Into<String>) -> ConfigErrors {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            line: None,
            reason: reason.into(),
        }])
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list holds no problem at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
