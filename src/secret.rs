//! Secrets: values that may be written into managed files but must never be shown.
//!
//! A [`Secret`] prints as `<secret>` in `Debug` and `Display` and cannot be serialised. Every
//! piece of text that reaches a human or a machine-readable document (diffs, plans, JSON,
//! errors, remote stderr) passes through a [`Redactor`] built from all resolved secrets.

use std::fmt;

pub const MASK: &str = "********";

/// The shortest secret value foobar accepts (refused at load otherwise). Masking replaces
/// every occurrence of a value in what foobar prints; a value of a few characters (`web`, `1`)
/// occurs inside host names and field names and would corrupt the output. Eight is also
/// what VRRP uses of `vip_password`.
pub const MIN_SECRET_LENGTH: usize = 8;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value. Call sites are few and deliberate: rendering files and SQL sent on stdin.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// What a template sees instead of a secret when secrets are not rendered (`foobar render`
/// without `--with-secrets`): a readable marker naming the secret.
pub fn placeholder(name: &str) -> String {
    format!("<secret:{name}>")
}

/// Replaces every known secret value, in every form foobar sends it in, with [`MASK`].
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    values: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms)", self.values.len())
    }
}

/// Shorter base64 fragments are too likely to occur by chance to be worth masking.
const MIN_BASE64_FRAGMENT: usize = 8;

/// The forms of one secret that foobar itself produces or sends: the value; its SQL string
/// literal as sent (`\` and `''` doubled, what `src/mysql/sql.rs` writes), the older
/// `\'` escaping (the `sql_string` filter) and the quotes-only doubling; the
/// `mysql_native_password` hash MariaDB is sent for accounts; the percent-encoded form of
/// the `urlencode` filter; as the escaping filters write it (`env`, `mycnf`, `nginx`,
/// `haproxy`); and the base64 in apply scripts, at each of the three alignments
/// a value can have inside a longer encoded body.
fn forms(value: &str) -> Vec<String> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut out = vec![
        value.to_string(),
        value.replace('\\', "\\\\").replace('\'', "''"),
        value.replace('\\', "\\\\").replace('\'', "\\'"),
        value.replace('\'', "''"),
        crate::mysql::mysql_native_password_hash(value),
        percent_encode(value),
    ];
    // As the escaping filters write it into files (crate::render::escape), so that a
    // validator's message quoting a rendered line is masked too: EnvironmentFile, option
    // file, HAProxy and Nginx quoting.
    let escaped = |specials: &[char], newline: bool| {
        let mut s = String::new();
        for c in value.chars() {
            match c {
                '\n' if newline => s.push_str("\\n"),
                '\t' if newline => s.push_str("\\t"),
                c if specials.contains(&c) => {
                    s.push('\\');
                    s.push(c);
                }
                c => s.push(c),
            }
        }
        s
    };
    out.push(escaped(&['\\', '"', '$', '`'], false));
    out.push(escaped(&['\\', '"', '\''], true));
    out.push(escaped(&['\\', '"'], false));
    out.push(value.replace('\'', "'\\''"));
    // Each of those as it appears inside a JSON string (`--json`, saved plans): `\\` and `"`
    // escaped.
    let json: Vec<String> = out
        .iter()
        .filter_map(|f| serde_json::to_string(f).ok())
        .map(|q| q[1..q.len() - 1].to_string())
        .collect();
    out.extend(json);
    let bytes = value.as_bytes();
    for offset in 0..3usize {
        // Encode the value preceded by `offset` bytes; keep only the characters that depend
        // on the value alone (whole 3-byte groups of it).
        let mut buf = vec![0u8; offset];
        buf.extend_from_slice(bytes);
        let whole = buf.len() / 3 * 3;
        let encoded = engine.encode(&buf[..whole]);
        let skip = [0, 2, 3][offset];
        if encoded.len() >= skip + MIN_BASE64_FRAGMENT {
            out.push(encoded[skip..].to_string());
        }
    }
    out
}

/// minijinja's `urlencode`: everything but ASCII alphanumerics and `/._-` as `%XX`, space as
/// `%20`.
fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"/._-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut values: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.0.is_empty())
            .flat_map(|s| forms(&s.0))
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Self { values }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    pub fn contains_secret(&self, text: &[u8]) -> bool {
        self.values
            .iter()
            .any(|v| text.windows(v.len()).any(|w| w == v.as_bytes()))
    }
}

/// The run's redactor, known to every printing path once secrets are resolved.
static GLOBAL: std::sync::RwLock<Option<Redactor>> = std::sync::RwLock::new(None);

/// Makes `secrets` known to [`redact`] and so to everything printed with [`crate::say`] /
/// [`crate::warn`] (and the edge's error printing). Called where secrets are resolved; each
/// call adds to what is masked.
pub fn register<'a>(secrets: impl IntoIterator<Item = &'a Secret>) {
    let added = Redactor::new(secrets);
    let mut guard = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
    let mut values = guard.take().map(|r| r.values).unwrap_or_default();
    values.extend(added.values);
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    *guard = Some(Redactor { values });
}

/// `text` with every registered secret masked: the one path from foobar to a terminal.
pub fn redact(text: &str) -> String {
    match GLOBAL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(r) => r.redact(text),
        None => text.to_string(),
    }
}

/// Set once a write to stdout failed because its reader went away (`foobar plan | head`).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether stdout's reader has gone away: loops that only print (`verify --watch`) stop.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Writes `text` to stdout through [`redact`]. Use [`crate::say`]. A closed stdout is not an
/// error: the rest is dropped quietly and the command ends as it would have (a change in
/// progress is not cut short because a pager was closed).
pub fn write_stdout(text: &str) {
    use std::io::Write;
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(redact(text).as_bytes())
        .and_then(|()| out.flush());
    if let Err(e) = written {
        STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        // A reader that went away is the reader's choice; a full disk or a bad file is data
        // lost (`plan > /dev/full` used to exit 0 with nothing written).
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = STDOUT_FAILED.set(e.to_string());
        }
    }
}

/// The first error writing stdout other than its reader going away, if one happened.
static STDOUT_FAILED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Why stdout could not be written (not a closed pipe, which ends a command quietly): the
/// command's output is lost, and its exit code must say so.
pub fn stdout_failed() -> Option<&'static str> {
    STDOUT_FAILED.get().map(String::as_str)
}

/// Writes `text` to stderr through [`redact`]. Use [`crate::warn`].
pub fn write_stderr(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(redact(text).as_bytes());
    let _ = err.flush();
}

/// stderr through [`redact`] as an `io::Write`, for writers that want one (the `tracing`
/// subscriber): each `write` is one formatted event.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedactedStderr;

impl std::io::Write for RedactedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_stderr(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `print!` through the run's [`Redactor`]. Every byte foobar writes to stdout goes through
/// here: a test refuses `print!`/`println!`/`eprint!`/`eprintln!` anywhere else in `src/`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::secret::write_stdout(&format!($($arg)*)) };
}

/// `eprint!` through the run's [`Redactor`]; the stderr twin of [`say`].
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::secret::write_stderr(&format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a validator prints quotes the rendered line: the value as each escaping filter
    /// wrote it is masked too.
    #[test]
    fn the_escaped_forms_of_the_file_syntaxes_are_masked() {
        let value = r#"pa"ss'w%rd\x"#;
        let r = Redactor::new([&Secret::new(value)]);
        for filter in [
            crate::render::escape::env,
            crate::render::escape::mycnf,
            crate::render::escape::haproxy,
            crate::render::escape::nginx,
            crate::render::escape::sql,
            crate::render::escape::json,
        ] {
            let written = filter(&minijinja::Value::from(value)).unwrap();
            let line = format!("line 3: password {written} is wrong");
            let shown = r.redact(&line);
            assert!(shown.contains(MASK), "{line} -> {shown}");
            assert!(
                !shown.contains("ss'w") && !shown.contains("ss\\'w"),
                "{line} -> {shown}"
            );
        }
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<secret> <secret>");
    }

    #[test]
    fn redactor_masks_longest_first() {
        let a = Secret::new("abc");
        let b = Secret::new("abcdef");
        let r = Redactor::new([&a, &b]);
        assert_eq!(r.redact("x abcdef y abc"), "x ******** y ********");
        assert!(r.contains_secret(b"..abc.."));
        assert!(!r.contains_secret(b"..ab.."));
    }

    #[test]
    fn redactor_masks_sql_escaped_forms() {
        let s = Secret::new("a'b\\c");
        let r = Redactor::new([&s]);
        assert_eq!(r.redact("PASSWORD='a\\'b\\\\c'"), "PASSWORD='********'");
        // What src/mysql/sql.rs sends: quotes and backslashes doubled.
        assert_eq!(r.redact("PASSWORD='a''b\\\\c'"), "PASSWORD='********'");
        assert_eq!(r.redact("PASSWORD='a''b\\c'"), "PASSWORD='********'");
    }

    #[test]
    fn redactor_masks_forms_inside_json() {
        let s = Secret::new("a\"b\\c'd");
        let r = Redactor::new([&s]);
        let doc = serde_json::json!({ "error": format!("bad password {}", s.expose()),
            "sql": format!("'{}'", s.expose().replace('\\', "\\\\").replace('\'', "''")) });
        let text = serde_json::to_string(&doc).unwrap();
        let masked = r.redact(&text);
        assert!(!masked.contains("b\\\\c"), "{masked}");
        assert_eq!(masked.matches(MASK).count(), 2, "{masked}");
    }

    #[test]
    fn redactor_masks_the_hash_and_urlencoded_forms() {
        let s = Secret::new("p@ss w/rd");
        let r = Redactor::new([&s]);
        let hash = crate::mysql::mysql_native_password_hash("p@ss w/rd");
        assert_eq!(
            r.redact(&format!("IDENTIFIED BY PASSWORD '{hash}'")),
            "IDENTIFIED BY PASSWORD '********'"
        );
        assert_eq!(r.redact("dsn=p%40ss%20w/rd"), "dsn=********");
    }

    #[test]
    fn redactor_masks_base64_at_every_alignment() {
        use base64::Engine as _;
        let secret = "Zq7-distinctive-SECRET";
        let r = Redactor::new([&Secret::new(secret)]);
        for prefix in ["", "x", "xy", "PASSWORD=", "PASSWORD=\"", "k: "] {
            let body = format!("{prefix}{secret}\ntrailing text\n");
            let encoded = base64::engine::general_purpose::STANDARD.encode(body.as_bytes());
            assert!(
                r.contains_secret(encoded.as_bytes()),
                "{prefix:?}: {encoded}"
            );
            assert!(r.redact(&encoded).contains(MASK));
        }
    }

    #[test]
    fn the_global_redactor_masks_what_was_registered() {
        register([&Secret::new("Zq7-global-one")]);
        register([&Secret::new("Zq7-global-two")]);
        assert_eq!(
            redact("a Zq7-global-one b Zq7-global-two"),
            "a ******** b ********"
        );
    }

    /// The choke point holds: no code in src/ prints except through `say!`/`warn!`.
    #[test]
    fn every_print_goes_through_the_redactor() {
        fn walk(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read src") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("secret.rs")
                {
                    let text = std::fs::read_to_string(&path).expect("read source");
                    for (n, line) in text.lines().enumerate() {
                        let code = line.split("//").next().unwrap_or("");
                        for m in ["print!(", "println!(", "eprint!(", "eprintln!("] {
                            if code.contains(m) {
                                found.push(format!("{}:{}: {line}", path.display(), n + 1));
                            }
                        }
                        // Writing to the handles directly bypasses it too (asking whether
                        // they are terminals and flushing aside).
                        let handle = code.contains("io::stdout()") || code.contains("io::stderr()");
                        let harmless = code.contains("is_terminal") || code.contains(".flush()");
                        if handle && !harmless {
                            found.push(format!("{}:{}: {line}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        found.dedup();
        assert!(
            found.is_empty(),
            "print through foobar::say!/warn! (the Redactor) instead:\n{}",
            found.join("\n")
        );
    }
}
