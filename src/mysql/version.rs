//! Server flavour and version, read from `SELECT VERSION()`, and the SQL dialect they imply.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Diagnostic;

/// Which server family a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Flavor {
    #[serde(rename = "mysql")]
    MySql,
    #[serde(rename = "mariadb")]
    MariaDb,
}

impl Flavor {
    /// The spelling the inventory uses: `mysql` or `mariadb`.
    pub fn config_name(self) -> &'static str {
        match self {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
        }
    }

    /// The command-line client shipped with this flavour's server packages.
    pub fn client_binary(self) -> &'static str {
        match self {
            Flavor::MySql => "mysql",
            Flavor::MariaDb => "mariadb",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::MySql => "MySQL",
            Flavor::MariaDb => "MariaDB",
        })
    }
}

impl FromStr for Flavor {
    type Err = FlavorError;

    /// Parses the inventory's spelling (`mysql` or `mariadb`, nothing else).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mysql" => Ok(Flavor::MySql),
            "mariadb" => Ok(Flavor::MariaDb),
            _ => Err(FlavorError::Unknown {
                value: s.to_string(),
            }),
        }
    }
}

/// A server's flavour and numeric version, e.g. MariaDB 10.11.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ServerVersion {
    pub flavor: Flavor,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// The oldest versions foobar drives. MariaDB 10.5.1 brought `STOP/START REPLICA` and the
/// `mysql.user` view with `authentication_string`; MySQL 5.7 brought `ALTER USER` and GTIDs
/// as used here.
const MIN_MARIADB: (u32, u32, u32) = (10, 5, 1);
const MIN_MYSQL: (u32, u32, u32) = (5, 7, 0);

impl ServerVersion {
    /// Reads `SELECT VERSION()` output: `10.11.6-MariaDB-0+deb12u1-log`, `8.0.36`,
    /// `8.0.22-0ubuntu0.20.04.3`, `5.7.44-log`. The flavour is MariaDB when the text says so
    /// (case-insensitive), MySQL otherwise (Percona Server and other MySQL builds included).
    /// The `5.5.5-` prefix old MariaDB servers put in the handshake version is skipped.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let err = |reason: &'static str| VersionError {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err("it is empty"));
        }
        let flavor = if trimmed.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let mut rest = trimmed;
        if flavor == Flavor::MariaDb
            && let Some(r) = rest.strip_prefix("5.5.5-")
        {
            rest = r;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let numeric = &rest[..end];
        let mut parts = numeric.split('.');
        let mut next = |what: &'static str| -> Result<u32, VersionError> {
            parts
                .next()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| err(what))?
                .parse::<u32>()
                .map_err(|_| err("a version number is too large"))
        };
        let major = next("it does not start with MAJOR.MINOR.PATCH")?;
        let minor = next("it does not start with MAJOR.MINOR.PATCH")?;
        let patch = next("it does not start with MAJOR.MINOR.PATCH")?;
        if parts.next().is_some_and(|p| !p.is_empty()) {
            return Err(err("it has more than three version numbers"));
        }
        Ok(Self {
            flavor,
            major,
            minor,
            patch,
        })
    }

    /// Whether this version is `major.minor.patch` or later (flavour is not compared).
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }

    /// The statement dialect this server speaks.
    pub fn dialect(&self) -> Dialect {
        match self.flavor {
            Flavor::MariaDb => Dialect::MariaDb,
            Flavor::MySql if self.at_least(8, 0, 23) => Dialect::MySqlModern,
            Flavor::MySql => Dialect::MySqlLegacy,
        }
    }

    /// Whether foobar supports this server (MySQL >= 5.7, MariaDB >= 10.5.1).
    pub fn is_supported(&self) -> bool {
        let (a, b, c) = self.minimum();
        self.at_least(a, b, c)
    }

    fn minimum(&self) -> (u32, u32, u32) {
        match self.flavor {
            Flavor::MySql => MIN_MYSQL,
            Flavor::MariaDb => MIN_MARIADB,
        }
    }

    /// The authentication plugin foobar creates accounts with on this server:
    /// `caching_sha2_password` on MySQL 8 (the default there, and the only one 8.4 enables),
    /// `mysql_native_password` on MySQL 5.7 and MariaDB.
    pub fn auth_plugin(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.major >= 8 => "caching_sha2_password",
            _ => "mysql_native_password",
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}.{}.{}",
            self.flavor, self.major, self.minor, self.patch
        )
    }
}

impl FromStr for ServerVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// How replication statements are spelled on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Dialect {
    /// MySQL >= 8.0.23: `CHANGE REPLICATION SOURCE TO`, `START REPLICA`, `SOURCE_*` options.
    MySqlModern,
    /// MySQL < 8.0.23: `CHANGE MASTER TO`, `START SLAVE`, `MASTER_*` options.
    MySqlLegacy,
    /// MariaDB: `CHANGE MASTER TO ... MASTER_USE_GTID`, `START REPLICA` (10.5.1+).
    MariaDb,
}

impl Dialect {
    pub fn flavor(self) -> Flavor {
        match self {
            Dialect::MySqlModern | Dialect::MySqlLegacy => Flavor::MySql,
            Dialect::MariaDb => Flavor::MariaDb,
        }
    }
}

/// Checks the inventory's flavour (`mysql` | `mariadb`) against what the server reports, and
/// that the server is new enough. Returns the dialect to speak to it.
pub fn check_flavor(configured: &str, live: &ServerVersion) -> Result<Dialect, FlavorError> {
    let flavor: Flavor = configured.parse()?;
    if flavor != live.flavor {
        return Err(FlavorError::Mismatch {
            configured: flavor,
            live: *live,
        });
    }
    if !live.is_supported() {
        let (a, b, c) = live.minimum();
        return Err(FlavorError::Unsupported {
            live: *live,
            minimum: format!("{} {a}.{b}.{c}", live.flavor),
        });
    }
    Ok(live.dialect())
}

/// Checks that `replica` may replicate from `source`. Both flavours document replication
/// from an older source to a newer replica (the way through an upgrade: replicas first) and
/// not the other way: a newer source's binary log may hold events an older replica cannot
/// apply. MySQL supports one release series ahead; MariaDB any later release.
pub fn check_direction(
    source: &ServerVersion,
    replica: &ServerVersion,
) -> Result<(), DirectionError> {
    let refuse = |reason| {
        Err(DirectionError {
            primary: *source,
            replica: *replica,
            reason,
        })
    };
    if source.flavor != replica.flavor {
        return refuse("replication between MariaDB and MySQL is not a direction foobar drives");
    }
    if (replica.major, replica.minor) < (source.major, source.minor) {
        return refuse("a replica older than its source may not apply what the source logs");
    }
    if replica.flavor == Flavor::MySql && replica.major > source.major + 1 {
        return refuse("MySQL replicates to at most the next major release");
    }
    Ok(())
}

/// A replica and its source whose versions foobar will not pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{replica} cannot replicate from {primary}: {reason}")]
pub struct DirectionError {
    pub primary: ServerVersion,
    pub replica: ServerVersion,
    pub reason: &'static str,
}

impl Diagnostic for DirectionError {
    fn hint(&self) -> Option<String> {
        Some(
            "upgrade replicas before the primary: replace the replica by a host on the newer release \
             (`foobar apply` seeds it), then switch over to it with `foobar failover --to HOST`; \
             docs/operations/os-upgrade.md walks through it"
                .into(),
        )
    }
}

/// `SELECT VERSION()` printed something that is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read a server version from `{text}`: {reason}")]
pub struct VersionError {
    pub text: String,
    pub reason: &'static str,
}

impl Diagnostic for VersionError {
    fn hint(&self) -> Option<String> {
        Some("expected the output of `SELECT VERSION()`, e.g. `8.0.36` or `10.11.6-MariaDB-0+deb12u1`".into())
    }
}

/// The inventory's flavour is unknown, disagrees with the server, or the server is too old.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlavorError {
    #[error("unknown database flavor `{value}`: expected `mysql` or `mariadb`")]
    Unknown { value: String },
    #[error("the inventory says the database is {configured} but the server runs {live}")]
    Mismatch {
        configured: Flavor,
        live: ServerVersion,
    },
    #[error("{live} is too old: foobar needs {minimum} or later")]
    Unsupported {
        live: ServerVersion,
        minimum: String,
    },
}

impl Diagnostic for FlavorError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            FlavorError::Unknown { value } => {
                match crate::error::did_you_mean(&value.to_ascii_lowercase(), ["mysql", "mariadb"])
                {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "set the database flavor to `mysql` or `mariadb`".into(),
                }
            }
            FlavorError::Mismatch { live, .. } => format!(
                "set the flavor to `{}` for this host, or install the server the inventory names: \
                 the replication statements and password handling differ between the two",
                live.flavor.config_name()
            ),
            FlavorError::Unsupported { .. } => {
                "upgrade the server; older releases lack the statements foobar sends".into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ServerVersion {
        ServerVersion::parse(s).unwrap()
    }

    #[test]
    fn replicas_may_be_newer_than_their_source_never_older() {
        let ok = [
            ("10.11.6-MariaDB", "10.11.6-MariaDB"),
            ("10.11.6-MariaDB", "10.11.4-MariaDB"),
            ("10.11.6-MariaDB", "11.8.3-MariaDB"),
            ("10.6.16-MariaDB", "11.8.3-MariaDB"),
            ("8.0.36", "8.4.2"),
        ];
        for (source, replica) in ok {
            assert_eq!(
                check_direction(&v(source), &v(replica)),
                Ok(()),
                "{source} -> {replica}"
            );
        }
        let refused = [
            ("11.8.3-MariaDB", "10.11.6-MariaDB", "older than its source"),
            ("8.4.2", "8.0.36", "older than its source"),
            ("5.7.44-log", "9.1.0", "next major release"),
            ("10.11.6-MariaDB", "8.0.36", "between MariaDB and MySQL"),
        ];
        for (source, replica, why) in refused {
            let e = check_direction(&v(source), &v(replica)).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        let e = check_direction(&v("11.8.3-MariaDB-deb13"), &v("10.11.6-MariaDB-0+deb12u1"))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "MariaDB 10.11.6 cannot replicate from MariaDB 11.8.3: a replica older than its source may not apply what the source logs"
        );
        assert!(e.hint().unwrap().contains("replicas before the primary"));
    }

    #[test]
    fn parses_the_versions_servers_print() {
        let cases = [
            ("10.11.6-MariaDB-0+deb12u1", Flavor::MariaDb, (10, 11, 6)),
            (
                "10.11.6-MariaDB-0+deb12u1-log",
                Flavor::MariaDb,
                (10, 11, 6),
            ),
            (
                "10.11.19-MariaDB-0+deb12u1-log",
                Flavor::MariaDb,
                (10, 11, 19),
            ),
            (
                "5.5.5-10.6.16-MariaDB-1:10.6.16+maria~ubu2204",
                Flavor::MariaDb,
                (10, 6, 16),
            ),
            ("11.4.2-MariaDB", Flavor::MariaDb, (11, 4, 2)),
            ("8.0.36", Flavor::MySql, (8, 0, 36)),
            ("8.4.2", Flavor::MySql, (8, 4, 2)),
            ("8.0.22-0ubuntu0.20.04.3", Flavor::MySql, (8, 0, 22)),
            ("5.7.44-log", Flavor::MySql, (5, 7, 44)),
            ("8.0.36-28", Flavor::MySql, (8, 0, 36)),
            ("  8.0.36\n", Flavor::MySql, (8, 0, 36)),
        ];
        for (text, flavor, (major, minor, patch)) in cases {
            assert_eq!(
                ServerVersion::parse(text).unwrap(),
                ServerVersion {
                    flavor,
                    major,
                    minor,
                    patch
                },
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for text in [
            "",
            "MariaDB",
            "8.0",
            "8",
            "x8.0.1",
            "8.0.1.2",
            "99999999999.0.0",
        ] {
            let e = ServerVersion::parse(text).unwrap_err();
            assert_eq!(e.text, text);
        }
        let e = ServerVersion::parse("8.0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read a server version from `8.0`: it does not start with MAJOR.MINOR.PATCH"
        );
    }

    #[test]
    fn dialect_switches_at_8_0_23() {
        assert_eq!(v("8.0.22-0ubuntu0.20.04.3").dialect(), Dialect::MySqlLegacy);
        assert_eq!(v("8.0.23").dialect(), Dialect::MySqlModern);
        assert_eq!(v("8.4.2").dialect(), Dialect::MySqlModern);
        assert_eq!(v("5.7.44-log").dialect(), Dialect::MySqlLegacy);
        assert_eq!(v("10.11.6-MariaDB-0+deb12u1").dialect(), Dialect::MariaDb);
        assert_eq!(Dialect::MySqlLegacy.flavor(), Flavor::MySql);
    }

    #[test]
    fn display_and_plugins() {
        assert_eq!(
            v("10.11.6-MariaDB-0+deb12u1-log").to_string(),
            "MariaDB 10.11.6"
        );
        assert_eq!(v("8.0.36").to_string(), "MySQL 8.0.36");
        assert_eq!(v("8.4.2").auth_plugin(), "caching_sha2_password");
        assert_eq!(v("5.7.44").auth_plugin(), "mysql_native_password");
        assert_eq!(v("10.11.6-MariaDB").auth_plugin(), "mysql_native_password");
    }

    #[test]
    fn check_flavor_accepts_matching_servers() {
        assert_eq!(
            check_flavor("mariadb", &v("10.11.6-MariaDB-0+deb12u1")),
            Ok(Dialect::MariaDb)
        );
        assert_eq!(
            check_flavor("mysql", &v("8.0.36")),
            Ok(Dialect::MySqlModern)
        );
        assert_eq!(
            check_flavor("mysql", &v("5.7.44-log")),
            Ok(Dialect::MySqlLegacy)
        );
    }

    #[test]
    fn check_flavor_names_both_sides_on_mismatch() {
        let e = check_flavor("mysql", &v("10.11.6-MariaDB-0+deb12u1")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the inventory says the database is MySQL but the server runs MariaDB 10.11.6"
        );
        assert!(e.hint().unwrap().contains("`mariadb`"));
        let e = check_flavor("mariadb", &v("8.0.36")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the inventory says the database is MariaDB but the server runs MySQL 8.0.36"
        );
        assert!(e.hint().unwrap().contains("`mysql`"));
    }

    #[test]
    fn check_flavor_rejects_unknown_names_and_old_servers() {
        let e = check_flavor("MariaDB", &v("10.11.6-MariaDB")).unwrap_err();
        assert_eq!(
            e,
            FlavorError::Unknown {
                value: "MariaDB".into()
            }
        );
        assert_eq!(e.hint().unwrap(), "did you mean `mariadb`?");
        let e = check_flavor("mariadb", &v("10.3.39-MariaDB")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "MariaDB 10.3.39 is too old: foobar needs MariaDB 10.5.1 or later"
        );
        let e = check_flavor("mysql", &v("5.6.51")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "MySQL 5.6.51 is too old: foobar needs MySQL 5.7.0 or later"
        );
    }
}
