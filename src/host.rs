//! [`HostName`]: a host's name as written in the inventory. Its own module because every stage
//! names hosts: `inventory` makes them, `transport` connects to them, `report` lists them, and
//! none of those should import another just for the name.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A host's name as written in the inventory (`web-01`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostName(pub String);

impl HostName {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
