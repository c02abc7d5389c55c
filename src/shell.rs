//! Shell scripts foobar runs as root on a host: one value, two renderings.
//!
//! A [`Script`] is built from parts whose kind says how they may reach the shell:
//! - [`Script::code`] takes only `&'static str`: foobar's own shell text, written in this
//!   crate, never a value from an inventory, playbook, template or synced file;
//! - [`Script::word`] quotes a value as one shell word (by `shlex`), whatever it holds;
//! - [`Script::trusted`] pastes a command verbatim; only the two commands a playbook author
//!   writes as commands go through it: a file's `validate` and a handler's `run:`;
//! - [`Script::data`] carries bytes (a file body) as a base64 here-document;
//! - [`Script::text`] carries a text body (UTF-8, no NUL) as one quoted word, for the
//!   shell's own `printf '%s'` to write: no process (see [`is_text`]).
//!
//! So no data can become code by forgetting to quote it: there is no way to add a `String`
//! as code. [`Script::to_stdin`] is the real script; `Display` is the same script with every
//! file body replaced by its size and digest (bodies may hold secrets), for golden tests and
//! traces. Both walk the same parts, so they cannot disagree.
//!
//! The scripts themselves, and what exists on a host, are [`crate::remote`]'s.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("`{0}` holds a NUL byte, which no shell word can carry")]
    Nul(String),
    #[error("a body given as text is not UTF-8 text without NUL bytes")]
    NotText,
}

/// Whether a body can travel as a quoted word ([`Script::text`]): UTF-8 without NUL bytes.
/// Anything else travels as base64 ([`Script::data`]).
pub fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

#[derive(Clone)]
enum Part {
    Code(&'static str),
    /// Digits, from an integer: code by construction.
    Number(String),
    Word(String),
    Trusted(String),
    Data(Arc<[u8]>),
    /// A body that [`is_text`], as one quoted word.
    Text(Arc<[u8]>),
    /// A comment line; control characters become spaces, so it cannot end early.
    Comment(String),
}

/// A shell script under construction. See the module documentation.
#[derive(Clone, Default)]
pub struct Script {
    parts: Vec<Part>,
}

/// The directory `path` is in (`/` for a top-level path, `.` for a bare name).
pub fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => ".",
    }
}

impl Script {
    pub fn new() -> Self {
        Self::default()
    }

    /// foobar's own shell text.
    pub fn code(&mut self, text: &'static str) -> &mut Self {
        self.parts.push(Part::Code(text));
        self
    }

    /// `{ [ -d DIR ] || mkdir -p -- DIR; }` for the parent directory of foobar's own file
    /// `path`: no process when it exists (`[` is a builtin), as on every run after the first.
    pub fn parent_dir_made(&mut self, path: &'static str) -> &mut Self {
        let dir = parent(path);
        self.code("{ [ -d ")
            .code(dir)
            .code(" ] || mkdir -p -- ")
            .code(dir)
            .code("; }")
    }

    /// A value, quoted as exactly one shell word.
    pub fn word(&mut self, value: impl AsRef<str>) -> &mut Self {
        self.parts.push(Part::Word(value.as_ref().to_string()));
        self
    }

    /// Values, each quoted as one word, separated by spaces.
    pub fn words<I, S>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.code(" ");
            }
            self.word(v);
        }
        self
    }

    /// A decimal number.
    pub fn int(&mut self, n: impl Into<u64>) -> &mut Self {
        self.parts.push(Part::Number(n.into().to_string()));
        self
    }

    /// A file mode, as four octal digits.
    pub fn octal(&mut self, mode: u32) -> &mut Self {
        self.parts
            .push(Part::Number(format!("{:04o}", mode & 0o7777)));
        self
    }

    /// A command the playbook author wrote as a command (`validate`, a handler's `run:`),
    /// pasted as it is. Nothing else may come through here.
    pub fn trusted(&mut self, command: impl AsRef<str>) -> &mut Self {
        self.parts.push(Part::Trusted(command.as_ref().to_string()));
        self
    }

    /// A here-document carrying `bytes` in base64: the part must end a command line, e.g.
    /// `s.code("base64 -d > \"$T\" ").data(body)`. It ends the line itself.
    pub fn data(&mut self, bytes: Arc<[u8]>) -> &mut Self {
        self.parts.push(Part::Data(bytes));
        self
    }

    /// A text body (it must satisfy [`is_text`]) as exactly one quoted word, e.g.
    /// `s.code("printf '%s' ").text(body).code(" > \"$T\"")`: `printf` is a builtin of every
    /// POSIX shell, so writing the body starts no process, and `%s` prints it as it is.
    /// Shown as its size and digest, like [`Script::data`].
    pub fn text(&mut self, bytes: Arc<[u8]>) -> &mut Self {
        self.parts.push(Part::Text(bytes));
        self
    }

    /// Whether any value in the script (a word, a trusted command, a body) holds `needle`:
    /// e.g. a here-document's end marker, which no line of what it carries may equal.
    pub fn mentions(&self, needle: &str) -> bool {
        self.parts.iter().any(|p| match p {
            Part::Word(v) | Part::Trusted(v) | Part::Comment(v) => v.contains(needle),
            Part::Text(b) | Part::Data(b) => String::from_utf8_lossy(b).contains(needle),
            Part::Code(_) | Part::Number(_) => false,
        })
    }

    /// A `# ...` line (e.g. the play's name, which traces and tests read).
    pub fn comment(&mut self, text: &str) -> &mut Self {
        self.parts.push(Part::Comment(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        ));
        self
    }

    /// Appends another script.
    pub fn append(&mut self, other: &Script) -> &mut Self {
        self.parts.extend(other.parts.iter().cloned());
        self
    }

    fn render(&self, real: bool) -> Result<String, ShellError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Code(c) => out.push_str(c),
                Part::Number(n) => out.push_str(n),
                Part::Word(w) => out.push_str(&quote(w)?),
                Part::Trusted(t) => out.push_str(t),
                Part::Comment(c) => {
                    out.push_str("# ");
                    out.push_str(c);
                    out.push('\n');
                }
                Part::Text(bytes) => {
                    if real {
                        // Checked first: an error must never carry the body (it may be secret).
                        let text = std::str::from_utf8(bytes)
                            .ok()
                            .filter(|t| !t.contains('\0'))
                            .ok_or(ShellError::NotText)?;
                        out.push_str(&quote(text).map_err(|_| ShellError::NotText)?);
                    } else {
                        out.push_str(&format!(
                            "'<{} bytes, sha256 {}>'",
                            bytes.len(),
                            crate::render::sha256_hex(bytes)
                        ));
                    }
                }
                Part::Data(bytes) => {
                    out.push_str("<<'__FOOBAR_DATA__'\n");
                    if real {
                        let encoded = STANDARD.encode(bytes);
                        for chunk in encoded.as_bytes().chunks(76) {
                            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
                            out.push('\n');
                        }
                    } else {
                        out.push_str(&format!(
                            "# {} bytes, sha256 {}\n",
                            bytes.len(),
                            crate::render::sha256_hex(bytes)
                        ));
                    }
                    out.push_str("__FOOBAR_DATA__\n");
                }
            }
        }
        Ok(out)
    }

    /// The script for `sh -s`. Holds file bodies (which may hold secrets): never log it.
    pub fn to_stdin(&self) -> Result<String, ShellError> {
        self.render(true)
    }
}

/// The script with every file body replaced by its size and digest.
impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.render(false) {
            Ok(s) => f.write_str(&s),
            Err(e) => write!(f, "# cannot be rendered: {e}"),
        }
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One value as one POSIX shell word.
pub fn quote(value: &str) -> Result<String, ShellError> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| ShellError::Nul(value.replace('\0', "\\0")))
}

/// [`quote`] for values checked at load time to hold no NUL (paths, names): a NUL there is a
/// bug in foobar, so it is shown escaped rather than dropped silently.
pub fn sh_quote(value: &str) -> String {
    quote(value).unwrap_or_else(|_| quote(&value.replace('\0', "\\0")).expect("no NUL left"))
}

/// A command line from argv words, each quoted.
pub fn command_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| sh_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_whatever_they_hold() {
        let mut s = Script::new();
        s.code("echo ")
            .word("a b")
            .code(" ")
            .word("$(id)")
            .code(" ")
            .word("it's");
        let text = s.to_stdin().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b $(id) it's\n");
    }

    #[test]
    fn a_nul_byte_is_refused_not_dropped() {
        let mut s = Script::new();
        s.word("a\0b");
        assert!(matches!(s.to_stdin(), Err(ShellError::Nul(_))));
    }

    #[test]
    fn data_is_shown_by_digest_and_sent_in_base64() {
        let mut s = Script::new();
        s.code("base64 -d ").data(Arc::from(&b"secret\n"[..]));
        assert!(!s.to_string().contains("c2VjcmV0"), "{s}");
        assert!(s.to_string().contains("# 7 bytes, sha256 "));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(s.to_stdin().unwrap())
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"secret\n");
    }
}
