//! A value is data in every file format it lands in. The stack is rendered (`foobar render
//! --with-secrets`, the lab inventory in a temporary copy of the project, as tests/render.rs
//! does) with hostile values in every secret and in representative variables (quotes, `"""`,
//! `#`, `;`, `$(…)`, backslashes, spaces at both ends, unicode), and each rendered file is read
//! back by its real consumer, which must get exactly the value set:
//!
//! * EnvironmentFile (`app.env`, `/etc/default/*`): systemd's own parser. systemd is not PID 1
//!   here (no `systemd-run`, no `systemctl show`), so the file is handed to systemd's
//!   environment.d generator, which reads it with the same `parse_env_file_internal` that
//!   `EnvironmentFile=` uses (`load_env_file`) and prints the result shell-quoted; unlike
//!   `EnvironmentFile=` it then expands `$NAME` and `${NAME}`, which no test value holds. The
//!   same file sourced by `sh` (Debian's init scripts read `/etc/default` that way) must agree.
//! * `foobar-app.service`: `systemd-analyze verify`; its `Environment=` words read back by the
//!   unit-file rules (unquote, C escapes, `%%`), and `systemd-sysusers --root` creates the app
//!   user from `sysusers.d`, whose GECOS field must be the domain's.
//! * Option files: `my_print_defaults`, and a real login with the binlog archive's file; the
//!   exporter's file by the exporter itself (prometheus-mysqld-exporter logs in: `mysql_up 1`),
//!   both against a scratch MariaDB server started by the test; the SQL files run on it, and
//!   the accounts they set take the passwords the other files carry.
//! * HAProxy: `haproxy -c`, then HAProxy run in a network namespace of its own, whose health
//!   check must send the domain, byte for byte, as its Host header.
//! * Nginx: `nginx -t` on the rendered site verbatim, in a network namespace of its own.
//! * Prometheus: `promtool check config` / `check rules`, and the files parsed by Python's yaml.
//!
//! Newline and NUL are refused, naming the variable or secret and its file:line.
//!
//! Live, on the local test hosts (`lab_lock`): the lab stack applied with hostile secrets is
//! green: verify passes, the app writes and reads through the load balancer, Prometheus scrapes
//! both exporters (they logged in). The lab's service manager is not systemd but
//! docker-systemctl-replacement, which reads `EnvironmentFile=` without escapes: there the app's
//! password holds no `"`, `\` or `$` (on systemd hosts it may; the tests above prove it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin_cmd;
use tempfile::TempDir;

mod common;

/// Every character class the issue lists, spaces at both ends.
const APP_DB_PASSWORD: &str = r#"  app it's "q" """x"""y#z;w $(id) `id` \b\\ üñï€ "#;
const REPLICATION_PASSWORD: &str = r#" repl 'q' "q" """ #c ;s $(id) \n\ ü "#;
const EXPORTER_PASSWORD: &str = r#" mon x"""y#z;w 'it''s' $(id) \t\\ € "#;
const ARCHIVE_PASSWORD: &str = r#" arch "a'b" """ #c ;s $(id) \s\\\ ñ "#;
/// Nginx expands `$name` and has no escape for `$`: the domain holds none.
const DOMAIN: &str = r#" it's "www" """x""" #c ;s (id) \b\\ üñï€ "#;
const APP_DB_USER: &str = r#"ap'p"u#s;e\r ü"#;
const APP_DB_NAME: &str = r#"db'n"a#m;e $(id) \x ü"#;
const EXPORTER_USER: &str = r#"ex'p"o#r;t\ü"#;

const SECRETS: [(&str, &str); 4] = [
    ("FOOBAR_APP_DB_PASSWORD", APP_DB_PASSWORD),
    ("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD),
    ("FOOBAR_MYSQLD_EXPORTER_PASSWORD", EXPORTER_PASSWORD),
    ("FOOBAR_BINLOG_ARCHIVE_PASSWORD", ARCHIVE_PASSWORD),
];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the project (templates, inventories, playbooks, a tiny app) whose lab inventory
/// sets the hostile variables, `backups:` and the archive's secret; `edit` changes it further.
fn project(edit: impl Fn(String) -> String) -> TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = tempfile::tempdir().unwrap();
    for dir in ["templates", "inventories", "playbooks"] {
        copy_dir(&root.join(dir), &tree.path().join(dir));
    }
    std::fs::create_dir_all(tree.path().join("app/static")).unwrap();
    std::fs::write(tree.path().join("app/server.py"), "print('app')\n").unwrap();
    std::fs::write(tree.path().join("app/static/index.html"), "<h1>app</h1>\n").unwrap();
    let path = tree.path().join("inventories/lab.yml");
    let yaml = |s: &str| serde_json::to_string(s).unwrap();
    let socket = tree.path().join("haproxy-admin.sock");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen(
            "vars:\n",
            &format!(
                "vars:\n  domain: {}\n  app_db_user: {}\n  app_db_name: {}\n  mysqld_exporter_user: {}\n  haproxy_admin_socket: {}\n",
                yaml(DOMAIN),
                yaml(APP_DB_USER),
                yaml(APP_DB_NAME),
                yaml(EXPORTER_USER),
                yaml(socket.to_str().unwrap()),
            ),
            1,
        )
        .replacen(
            "secrets:\n",
            "secrets:\n  binlog_archive_password: { env: FOOBAR_BINLOG_ARCHIVE_PASSWORD }\n",
            1,
        )
        + "\nbackups:\n  archive: { host_pattern: \"127.%\" }\n";
    std::fs::write(&path, edit(text)).unwrap();
    tree
}

fn foobar(tree: &Path, secrets: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = cargo_bin_cmd!("foobar");
    cmd.current_dir(tree).env("NO_COLOR", "1");
    for (k, v) in secrets {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

fn describe(output: &std::process::Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a consumer; a missing one is a failure, never a skip.
fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): scripts/lab up installs it"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        describe(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

struct Rendered {
    tree: TempDir,
    out: PathBuf,
}

impl Rendered {
    fn path(&self, host: &str, path: &str) -> PathBuf {
        let p = self.out.join(host).join(path.trim_start_matches('/'));
        assert!(p.is_file(), "render wrote no {}", p.display());
        p
    }
    fn text(&self, host: &str, path: &str) -> String {
        std::fs::read_to_string(self.path(host, path)).unwrap()
    }
    fn p(&self, host: &str, path: &str) -> String {
        self.path(host, path).to_str().unwrap().to_string()
    }
}

fn render() -> Rendered {
    let tree = project(|t| t);
    let out = tree.path().join("out");
    let output = foobar(
        tree.path(),
        &SECRETS,
        &[
            "render",
            "--with-secrets",
            "-i",
            "inventories/lab.yml",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "render: {}", describe(&output));
    Rendered { tree, out }
}

/// The shell-quoted `NAME="…"` lines systemd's generator prints, unquoted.
fn generator_output(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let value = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => {
                let mut s = String::new();
                let mut chars = inner.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        s.extend(chars.next());
                    } else {
                        s.push(c);
                    }
                }
                s
            }
            None => v.to_string(),
        };
        out.insert(k.to_string(), value);
    }
    out
}

/// `file` read by systemd's env-file parser (see the top of this file), and by `sh`.
fn environment_file(file: &Path, name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("environment.d")).unwrap();
    std::fs::copy(file, dir.path().join("environment.d/50-foobar.conf")).unwrap();
    let output = Command::new(
        "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator",
    )
    .env_clear()
    .env("XDG_CONFIG_HOME", dir.path())
    .output()
    .expect("systemd's environment.d generator (package systemd)");
    assert!(output.status.success(), "{}", describe(&output));
    let vars = generator_output(&String::from_utf8(output.stdout).unwrap());
    let systemd = vars
        .get(name)
        .unwrap_or_else(|| panic!("systemd reads no {name} from {}: {vars:?}", file.display()))
        .clone();
    let sh = ok(
        "sh",
        &[
            "-c",
            &format!(". \"$1\" && printf %s \"${name}\""),
            "sh",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(sh, systemd, "sh and systemd read {name} differently");
    systemd
}

/// `Environment=` words of a unit, read by the unit-file rules: double quotes, C escapes
/// (`\\`, `\"`), `%%` for `%`.
fn unit_environment(unit: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in unit.lines() {
        let Some(word) = line.strip_prefix("Environment=") else {
            continue;
        };
        let inner = word
            .strip_prefix('"')
            .and_then(|w| w.strip_suffix('"'))
            .unwrap_or_else(|| panic!("unquoted Environment= word: {line}"));
        let mut s = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '%' => {
                    assert_eq!(chars.next(), Some('%'), "a lone % in {line}");
                    s.push('%');
                }
                '"' => panic!("an unescaped quote in {line}"),
                c => s.push(c),
            }
        }
        let (k, v) = s.split_once('=').unwrap();
        out.insert(k.to_string(), v.to_string());
    }
    out
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch MariaDB server in a temporary directory (its own socket, 127.0.0.1 and a free
/// port), stopped by PID when dropped.
struct Scratch {
    dir: TempDir,
    port: u16,
    child: std::process::Child,
}

impl Scratch {
    fn start() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        ok(
            "mariadb-install-db",
            &[
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                &format!("--datadir={}", data.display()),
            ],
        );
        let port = free_port();
        let child = Command::new("mariadbd")
            .args([
                "--no-defaults",
                "--user=root",
                &format!("--datadir={}", data.display()),
                &format!("--socket={}", dir.path().join("sock").display()),
                &format!("--pid-file={}", dir.path().join("pid").display()),
                &format!("--log-error={}", dir.path().join("error.log").display()),
                &format!("--port={port}"),
                "--bind-address=127.0.0.1",
                "--skip-log-bin",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let s = Scratch { dir, port, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !run("mariadb-admin", &[&s.socket_arg(), "ping"])
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "the scratch server did not start: {}",
                std::fs::read_to_string(s.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }
    fn socket_arg(&self) -> String {
        format!("--socket={}", self.socket().display())
    }
    /// Runs SQL as root over the socket.
    fn sql(&self, sql: &str) -> String {
        let mut child = Command::new("mariadb")
            .args([
                "--no-defaults",
                &self.socket_arg(),
                "--batch",
                "--skip-column-names",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(sql.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{sql}\n{}", describe(&output));
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A SQL string literal, written here independently of foobar's filter.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[test]
fn environment_files_carry_every_value() {
    let r = render();
    for host in ["web-01", "web-02"] {
        let env = r.path(host, "/etc/foobar/app.env");
        assert_eq!(
            environment_file(&env, "FOOBAR_DB_PASSWORD"),
            APP_DB_PASSWORD,
            "{host}: app.env:\n{}",
            r.text(host, "/etc/foobar/app.env")
        );
        let args = environment_file(
            &r.path(host, "/etc/default/prometheus-node-exporter"),
            "ARGS",
        );
        assert!(args.starts_with("--web.listen-address=127.0.1."), "{args}");
    }
    let args = environment_file(
        &r.path("web-01", "/etc/default/prometheus-mysqld-exporter"),
        "ARGS",
    );
    assert_eq!(
        args,
        "--web.listen-address=127.0.1.2:9104 --config.my-cnf=/etc/prometheus/mysqld-exporter.cnf"
    );
    println!("EnvironmentFile: systemd's parser and sh read every value as set");
}

#[test]
fn the_app_unit_and_its_user_carry_every_value() {
    let r = render();
    let unit = r.p("web-01", "/etc/systemd/system/foobar-app.service");
    let text = r.text("web-01", "/etc/systemd/system/foobar-app.service");
    let output = run("systemd-analyze", &["verify", "--man=no", &unit]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Only what a machine without this unit's user or binary says is allowed.
    for line in stderr.lines() {
        assert!(
            line.contains("foobar-app.service")
                && (line.contains("ExecStart") || line.contains("User")),
            "systemd-analyze verify: {line}\n{text}"
        );
    }
    let env = unit_environment(&text);
    assert_eq!(env["FOOBAR_DB_NAME"], APP_DB_NAME, "{text}");
    assert_eq!(env["FOOBAR_DB_USER"], APP_DB_USER, "{text}");
    assert_eq!(env["FOOBAR_APP_BIND"], "127.0.1.2:8000");

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    ok(
        "systemd-sysusers",
        &[
            &format!("--root={}", root.path().display()),
            &r.p("web-01", "/etc/sysusers.d/foobar-app.conf"),
        ],
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("foobar-app:"))
        .unwrap_or_else(|| panic!("sysusers made no foobar-app: {passwd}"));
    assert_eq!(
        entry.split(':').nth(4),
        Some(format!("{DOMAIN} application").as_str()),
        "{entry}"
    );
}

#[test]
fn option_files_and_sql_carry_every_value_to_a_real_server() {
    let r = render();
    let db = Scratch::start();

    // The binlog archive's account: its SQL file run as foobar's handler runs it, then a login
    // with its option file (host and port overridden to reach the scratch server).
    let archive_cnf = r.p("web-02", "/etc/foobar/binlog-archive.cnf");
    let options = ok(
        "my_print_defaults",
        &[&format!("--defaults-file={archive_cnf}"), "client"],
    );
    assert!(
        options
            .lines()
            .any(|l| l == format!("--password={ARCHIVE_PASSWORD}")),
        "my_print_defaults reads {options:?} from\n{}",
        r.text("web-02", "/etc/foobar/binlog-archive.cnf")
    );
    db.sql(&r.text("web-01", "/etc/foobar/binlog-archive-account.sql"));
    let who = ok(
        "mariadb",
        &[
            &format!("--defaults-file={archive_cnf}"),
            "--host=127.0.0.1",
            &format!("--port={}", db.port),
            "--batch",
            "--raw",
            "--skip-column-names",
            "-e",
            "SELECT CURRENT_USER()",
        ],
    );
    assert_eq!(who.trim(), "binlog_archive@127.%");

    // The app's account: made here with another password, set by the rendered SQL file, and
    // logged into with the password systemd reads from app.env.
    db.sql(&format!(
        "CREATE USER {}@'127.%' IDENTIFIED BY 'not-yet-0123';",
        lit(APP_DB_USER)
    ));
    db.sql(&r.text("web-01", "/etc/foobar/app-password.sql"));
    let password = environment_file(
        &r.path("web-01", "/etc/foobar/app.env"),
        "FOOBAR_DB_PASSWORD",
    );
    let who = ok(
        "mariadb",
        &[
            "--no-defaults",
            "--host=127.0.0.1",
            &format!("--port={}", db.port),
            &format!("--user={APP_DB_USER}"),
            &format!("--password={password}"),
            "--batch",
            "--raw",
            "--skip-column-names",
            "-e",
            "SELECT CURRENT_USER()",
        ],
    );
    assert_eq!(who.trim(), format!("{APP_DB_USER}@127.%"));

    // The exporter reads its file with Go's ini parser: it must log in (mysql_up 1). Only the
    // socket line is changed, to the scratch server's.
    db.sql(&format!(
        "CREATE USER {u}@'localhost' IDENTIFIED BY {p}; GRANT PROCESS, REPLICATION CLIENT ON *.* TO {u}@'localhost';",
        u = lit(EXPORTER_USER),
        p = lit(EXPORTER_PASSWORD)
    ));
    let cnf = r
        .text("web-01", "/etc/prometheus/mysqld-exporter.cnf")
        .replace(
            "socket = /run/mysqld/mysqld.sock",
            &format!("socket = {}", db.socket().display()),
        );
    let cnf_path = r.tree.path().join("exporter.cnf");
    std::fs::write(&cnf_path, &cnf).unwrap();
    let port = free_port();
    let mut exporter = Command::new("prometheus-mysqld-exporter")
        .args([
            &format!("--config.my-cnf={}", cnf_path.display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prometheus-mysqld-exporter");
    let metrics = (|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("\nmysql_up ") {
                    return body;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        String::new()
    })();
    let _ = exporter.kill();
    let out = exporter.wait_with_output().unwrap();
    assert!(
        metrics.contains("\nmysql_up 1"),
        "the exporter did not log in with\n{cnf}\nits log:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `script` (sh) in a network namespace of its own with loopback up: every 127.x
/// address is local there, and nothing binds on the machine's.
fn in_network_namespace(script: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--net", "sh", "-c", script, "sh"];
    all.extend_from_slice(args);
    run("unshare", &all)
}

#[test]
fn haproxy_reads_and_sends_the_domain_as_set() {
    let r = render();
    let cfg = r.p("lb-01", "/etc/haproxy/haproxy.cfg");
    ok("haproxy", &["-c", "-q", "-f", &cfg]);
    // A web host that records the health check HAProxy sends it.
    let dir = tempfile::tempdir().unwrap();
    let listener = dir.path().join("listener.py");
    let got = dir.path().join("request");
    std::fs::write(
        &listener,
        "import socket, sys\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.1.2', 80)); s.listen(5)\n\
         c, _ = s.accept(); data = b''\n\
         while b'\\r\\n\\r\\n' not in data:\n    data += c.recv(4096)\n\
         c.sendall(b'HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\n\\r\\n')\n\
         open(sys.argv[1], 'wb').write(data)\n",
    )
    .unwrap();
    let output = in_network_namespace(
        "ip link set lo up && { python3 \"$1\" \"$2\" & l=$!; } && sleep 0.3 && \
         { haproxy -db -f \"$3\" >/dev/null 2>&1 & h=$!; } && \
         i=0; while [ ! -s \"$2\" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; \
         kill $h $l 2>/dev/null; wait; [ -s \"$2\" ]",
        &[listener.to_str().unwrap(), got.to_str().unwrap(), &cfg],
    );
    assert!(
        output.status.success(),
        "no health check arrived: {}",
        describe(&output)
    );
    let request = std::fs::read(&got).unwrap();
    let request = String::from_utf8(request).unwrap();
    let host = request
        .split("\r\n")
        .find_map(|l| {
            l.strip_prefix("host: ")
                .or_else(|| l.strip_prefix("Host: "))
        })
        .unwrap_or_else(|| panic!("no Host header in {request:?}"));
    assert_eq!(host, DOMAIN, "{request:?}");
}

#[test]
fn nginx_accepts_the_site_verbatim() {
    let r = render();
    let site = r.p("web-01", "/etc/nginx/sites-available/foobar");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{ include /etc/nginx/mime.types; include {site}; }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let output = in_network_namespace(
        "ip link set lo up && nginx -t -q -c \"$1\"",
        &[conf.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "nginx -t: {}\n{}",
        describe(&output),
        r.text("web-01", "/etc/nginx/sites-available/foobar")
    );
}

#[test]
fn prometheus_files_carry_every_value() {
    let r = render();
    let config = r.p("lb-01", "/etc/prometheus/prometheus.yml");
    let rules = r.p("lb-01", "/etc/prometheus/foobar-alerts.yml");
    ok("promtool", &["check", "config", "--syntax-only", &config]);
    ok("promtool", &["check", "rules", &rules]);
    let read = ok(
        "python3",
        &[
            "-c",
            "import json, sys, yaml; c = yaml.safe_load(open(sys.argv[1])); print(json.dumps(c['global']['external_labels']['stack']))",
            &config,
        ],
    );
    let stack: String = serde_json::from_str(read.trim()).unwrap();
    assert_eq!(stack, DOMAIN);
}

/// The value a syntax cannot carry stops the render or the load, naming what holds it.
#[test]
fn newline_and_nul_are_refused_naming_the_variable() {
    let secrets = |name: &str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        SECRETS
            .iter()
            .map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) })
            .collect()
    };
    let render = |tree: &Path, secrets: &[(&str, &str)]| {
        foobar(
            tree,
            secrets,
            &[
                "render",
                "--with-secrets",
                "-i",
                "inventories/lab.yml",
                "--out",
                "out",
            ],
        )
    };

    // A newline in a secret: refused where a template writes it, naming the secret, never
    // showing it; nothing written.
    let tree = project(|t| t);
    let injected = "pw-1234\nLD_PRELOAD=/tmp/x.so";
    let output = render(tree.path(), &secrets("FOOBAR_APP_DB_PASSWORD", injected));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(stderr.contains("templates/app/app.env.j2:3"), "{stderr}");
    assert!(
        stderr.contains("the secret `app_db_password`: a newline"),
        "{stderr}"
    );
    assert!(
        stderr.contains("a newline cannot be written in an EnvironmentFile value"),
        "{stderr}"
    );
    assert!(!stderr.contains("LD_PRELOAD"), "{stderr}");
    assert!(!tree.path().join("out/web-01/etc/foobar/app.env").exists());

    // In a variable: refused at load, naming it and its line.
    let tree = project(|t| {
        t.replacen(
            "  app_version: \"1\"\n",
            "  app_version: \"1\\nUser=root\"\n",
            1,
        )
    });
    let output = render(tree.path(), &SECRETS);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("`app_version` in vars: holds a newline"),
        "{stderr}"
    );
    assert!(stderr.contains("inventories/lab.yml:"), "{stderr}");

    // NUL, in a variable and in a secret file.
    let tree = project(|t| t.replacen("  app_version: \"1\"\n", "  app_version: \"1\\0\"\n", 1));
    let stderr = String::from_utf8_lossy(&render(tree.path(), &SECRETS).stderr).into_owned();
    assert!(
        stderr.contains("`app_version` in vars: holds a NUL byte"),
        "{stderr}"
    );
    let tree = project(|t| {
        t.replacen(
            "  app_db_password: { env: FOOBAR_APP_DB_PASSWORD }",
            "  app_db_password: { file: app-password }",
            1,
        )
    });
    std::fs::write(
        tree.path().join("inventories/app-password"),
        "secret-pw\0tail",
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&render(tree.path(), &SECRETS).stderr).into_owned();
    assert!(
        stderr.contains("secret `app_db_password` holds a NUL byte"),
        "{stderr}"
    );
    assert!(stderr.contains("inventories/lab.yml:"), "{stderr}");
    assert!(!stderr.contains("secret-pw"), "{stderr}");

    // Nginx cannot carry `$` in the domain; refused at render with the template's line.
    let tree = project(|t| t.replacen("  domain: ", "  domain: \"$host\"\n  x_unused: ", 1));
    let stderr = String::from_utf8_lossy(&render(tree.path(), &SECRETS).stderr).into_owned();
    assert!(
        stderr.contains("templates/nginx/foobar.conf.j2:4"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the value of `domain`: `$` cannot be written in Nginx's configuration"),
        "{stderr}"
    );
}

/// Syntaxes with no quoting at all refuse what would be read as more syntax: an
/// `admin_networks` entry that would add nftables rules, a keepalived password with a space.
#[test]
fn unquotable_syntaxes_refuse_what_they_cannot_carry() {
    let tree = project(|t| t);
    let path = tree.path().join("inventories/lab-firewall.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("admin_networks: [127.0.9.2/32]"), "{text}");
    std::fs::write(
        &path,
        text.replace(
            "admin_networks: [127.0.9.2/32]",
            "admin_networks: [\"127.0.9.2/32 } tcp dport 22 accept; ip saddr { 0.0.0.0/0\"]",
        ),
    )
    .unwrap();
    let output = foobar(
        tree.path(),
        &SECRETS,
        &[
            "render",
            "-i",
            "inventories/lab-firewall.yml",
            "-p",
            "playbooks/firewall.yml",
            "--out",
            "out",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr.contains("templates/nftables/firewall.nft.j2:"),
        "{stderr}"
    );
    assert!(stderr.contains("the value of `admin_networks`"), "{stderr}");
    assert!(stderr.contains("CIDR"), "{stderr}");

    let mut secrets = SECRETS.to_vec();
    secrets.push(("FOOBAR_VIP_PASSWORD", "vrrp pass#1"));
    let output = foobar(
        tree.path(),
        &secrets,
        &[
            "render",
            "--with-secrets",
            "-i",
            "inventories/lab-net.yml",
            "--out",
            "out2",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr.contains("templates/keepalived/keepalived.conf.j2:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the secret `vip_password`: whitespace cannot be written"),
        "{stderr}"
    );
    assert!(!stderr.contains("vrrp pass#1"), "{stderr}");
}

/// The firewall loader's rollback timer is known by its PID. Once, a PID file left behind
/// (a rollback whose `nft -f` failed keeps it) and reused by another process made the loader
/// report `pending` and `--confirm` kill that process, as root. Run here in a mount namespace
/// with fresh /run and /var/lib, so nothing of the machine's is touched.
#[test]
fn the_firewall_timer_is_known_by_more_than_a_reused_pid() {
    let tree = project(|t| t);
    let output = foobar(
        tree.path(),
        &SECRETS,
        &[
            "render",
            "-i",
            "inventories/lab-firewall.yml",
            "-p",
            "playbooks/firewall.yml",
            "--out",
            "out",
        ],
    );
    assert!(output.status.success(), "{}", describe(&output));
    let loader = tree
        .path()
        .join("out/fw-01/usr/local/sbin/foobar-firewall-load");
    assert!(loader.is_file(), "{}", loader.display());
    let output = run(
        "unshare",
        &[
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && \
             mkdir -p /run/foobar-firewall && { sleep 30 & } && s=$! && echo $s > /run/foobar-firewall/timer.pid && \
             sh \"$1\" --status && sh \"$1\" --confirm && kill -0 $s && echo alive; kill $s",
            "sh",
            loader.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, "none\nnone\nalive\n", "{}", describe(&output));
}

/// The app's password for the lab: everything but what the lab's systemctl replacement reads
/// differently from systemd: the characters the `env` filter escapes (`"`, `\`, `$`, backtick).
const LAB_APP_PASSWORD: &str = " app it's #1;x (id) ü€ ";

fn prometheus_targets() -> Vec<(String, String)> {
    let Some((200, body)) = common::http("127.0.1.1:9090", "GET", "/api/v1/targets", "") else {
        return vec![];
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                format!(
                    "{}/{}",
                    t["labels"]["job"].as_str().unwrap_or(""),
                    t["labels"]["host"].as_str().unwrap_or("")
                ),
                t["health"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_lab_stack_applied_with_hostile_secrets_is_green() {
    let _guard = common::lab_lock();
    common::lab(&["reset"]);
    let project = common::Project::new();
    let secrets = [
        ("FOOBAR_APP_DB_PASSWORD", LAB_APP_PASSWORD),
        ("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD),
        ("FOOBAR_MYSQLD_EXPORTER_PASSWORD", EXPORTER_PASSWORD),
    ];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-i", "inventories/lab.yml"]);
        let output = foobar(project.dir.path(), &secrets, &all);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for (_, s) in &secrets {
            assert!(
                !text.contains(s.trim()),
                "foobar {args:?} shows a secret:\n{text}"
            );
        }
        (output.status.code(), text)
    };
    let (code, text) = run(&["apply", "--yes"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["verify"]);
    assert_eq!(code, Some(0), "{text}");
    // The app logs in (its password came through app.env): a note written and read back.
    let (status, body) =
        common::http("127.0.1.1:80", "POST", "/notes", "hostile secrets").expect("POST /notes");
    assert_eq!(status, 201, "{body}");
    let read = common::eventually(20, || {
        common::http("127.0.1.1:80", "GET", "/notes", "")
            .filter(|(s, b)| *s == 200 && b.contains("hostile secrets"))
    });
    assert!(read.is_some(), "the note was not read back");
    // Both exporters logged in with the password of their Go-ini file.
    let up = common::eventually(60, || {
        let t = prometheus_targets();
        let mysqld: Vec<_> = t.iter().filter(|(k, _)| k.starts_with("mysqld/")).collect();
        (mysqld.len() == 2 && mysqld.iter().all(|(_, h)| h == "up")).then_some(t)
    });
    assert!(up.is_some(), "exporters not up: {:?}", prometheus_targets());
    let metrics = common::ssh_ok(
        "web-02",
        "curl -s http://127.0.1.3:9104/metrics | grep '^mysql_up '",
    );
    assert_eq!(metrics.trim(), "mysql_up 1");
    // Replication runs with its hostile password.
    let (code, text) = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "converged: {text}");
}
