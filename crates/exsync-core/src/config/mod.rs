//! Configuration: the model the planner and service use (`model`), and the `exsync.toml` file
//! that describes it: its sections (`file`), how it is read and checked (`load`, `configurations`), the problems
//! found (`error`), and how the effective settings are shown back (`render`).

mod check;
mod configurations;
mod error;
mod file;
mod load;
mod model;
mod online;
mod pairing;
mod render;
mod walk;

pub use error::{ConfigError, ConfigErrors};
pub use file::*;
pub use load::{load, parse};
pub use model::*;
pub use online::{
    ExchangeOnlineConfig, MailboxRouting, OnlineCloud, OnlineCredential, OnlineEndpoints,
    ROUTE_TTL_DEFAULT_HOURS, ROUTE_TTL_MAX_HOURS,
};
pub use pairing::MailboxField;
pub use render::{configuration_toml, configuration_value, explain_assignment, Assignment};

#[cfg(test)]
mod tests;
