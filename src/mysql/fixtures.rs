//! Real and hand-written server output shared by the module's unit tests (see
//! tests/fixtures/mysql/README.md for where each came from).
pub(crate) const FACTS_EMPTY: &str =
    include_str!("../../tests/fixtures/mysql/facts-mariadb-10.11-fresh.txt");
pub(crate) const FACTS_MYSQL84: &str =
    include_str!("../../tests/fixtures/mysql/facts-mysql-8.4-replica.txt");
pub(crate) const FACTS_MONITORING: &str =
    include_str!("../../tests/fixtures/mysql/facts-mariadb-10.11-monitoring.txt");
pub(crate) const FACTS_PRIMARY: &str =
    include_str!("../../tests/fixtures/mysql/facts-mariadb-10.11-primary.txt");
pub(crate) const MARIADB_HEALTHY: &str =
    include_str!("../../tests/fixtures/mysql/mariadb-10.11-replica-healthy.txt");
pub(crate) const MARIADB_IO_1045: &str =
    include_str!("../../tests/fixtures/mysql/mariadb-10.11-replica-io-error-1045.txt");
pub(crate) const MARIADB_IO_STOPPED: &str =
    include_str!("../../tests/fixtures/mysql/mariadb-10.11-replica-io-stopped.txt");
pub(crate) const MARIADB_SQL_1396: &str =
    include_str!("../../tests/fixtures/mysql/mariadb-10.11-replica-sql-error-1396.txt");
pub(crate) const MYSQL57_SLAVE: &str =
    include_str!("../../tests/fixtures/mysql/mysql-5.7-slave-status.txt");
pub(crate) const MYSQL80_HEALTHY: &str =
    include_str!("../../tests/fixtures/mysql/mysql-8.0-replica-healthy.txt");
pub(crate) const MYSQL84_HEALTHY: &str =
    include_str!("../../tests/fixtures/mysql/mysql-8.4-replica-healthy.txt");
pub(crate) const REPLICA: &str =
    include_str!("../../tests/fixtures/mysql/facts-mariadb-10.11-replica.txt");
