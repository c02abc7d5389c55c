//! The framing of what scripts print: a line `#foobar:NAME` starts section NAME, and every
//! line up to the next such line belongs to it. One [`Section`] enum names every section any
//! script prints (gather, apply's lock, verify, audit); [`lines`] is the one reader.

/// The marker every section line starts with.
pub const MARK: &str = "#foobar:";

macro_rules! sections {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A section of a script's output.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Section {
            $($(#[$doc])* $variant,)*
        }

        impl Section {
            /// Every section.
            pub const ALL: &[Section] = &[$(Section::$variant,)*];

            /// The section's name, as printed after [`MARK`].
            pub const fn name(self) -> &'static str {
                match self {
                    $(Section::$variant => $name,)*
                }
            }

            /// The line that starts the section, with its newline.
            pub const fn line(self) -> &'static str {
                match self {
                    $(Section::$variant => concat!("#foobar:", $name, "\n"),)*
                }
            }

            /// Shell that prints [`Section::line`] (`echo` is a builtin): one command, without
            /// its end (a newline or `;`).
            pub const fn echo(self) -> &'static str {
                match self {
                    $(Section::$variant => concat!("echo '#foobar:", $name, "'"),)*
                }
            }

            /// The section a name (the text after [`MARK`]) names.
            pub fn from_name(name: &str) -> Option<Section> {
                match name {
                    $($name => Some(Section::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

sections! {
    /// `stat` lines of the managed paths (gather, and the check under the lock).
    Stat => "stat",
    /// `sha256sum` lines of the managed regular files.
    Sha256 => "sha256",
    /// `dpkg-query` lines: package and status.
    Packages => "packages",
    /// Service states (gather: `systemctl show`; verify: `systemctl is-active`).
    Services => "services",
    /// Handlers an interrupted run left pending.
    Pending => "pending",
    /// The lock's holder text, if any.
    Lock => "lock",
    /// Database facts (the mysql module reads them).
    Database => "database",
    /// The end of the facts; file frames may follow.
    End => "end",
    /// Printed first by a lock script that took the lock.
    Locked => "locked",
    /// `nginx -t` and its exit status (verify).
    Nginx => "nginx",
    /// HAProxy's servers' states (verify).
    Haproxy => "haproxy",
    /// Listening TCP sockets (audit).
    Listen => "listen",
    /// nftables' tables (audit).
    Firewall => "firewall",
    /// The host's release, from /etc/os-release (audit).
    Os => "os",
    /// The firewall's live and confirmed ruleset digests (gather, verify).
    FirewallState => "firewall-state",
}

/// One line of framed output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A known section starts.
    Start(Section),
    /// `#foobar:NAME` where no [`Section`] is named NAME.
    Unknown(&'a str),
    /// A line of the current section (`None` before the first).
    Body(Option<Section>, &'a str),
}

/// The section a line starts, if it is a section line: `Some(Err(name))` for an unknown one.
pub fn start(line: &str) -> Option<Result<Section, &str>> {
    let name = line.strip_prefix(MARK)?;
    Some(Section::from_name(name).ok_or(name))
}

/// Read framed output line by line, as [`str::lines`] splits it.
pub fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    lines_raw(text).map(|(line, _)| line)
}

/// [`lines`], each with the line as it was, line ending included (for output compared byte
/// for byte).
pub fn lines_raw(text: &str) -> impl Iterator<Item = (Line<'_>, &str)> {
    let mut current = None;
    text.split_inclusive('\n').map(move |raw| {
        let bare = match raw.strip_suffix('\n') {
            Some(l) => l.strip_suffix('\r').unwrap_or(l),
            None => raw,
        };
        let line = match start(bare) {
            Some(Ok(section)) => {
                current = Some(section);
                Line::Start(section)
            }
            Some(Err(name)) => {
                current = None;
                Line::Unknown(name)
            }
            None => Line::Body(current, bare),
        };
        (line, raw)
    })
}

/// Each section's lines (each ending in a newline), for output read by section rather than in
/// order; a section printed twice keeps both parts. Lines of an unknown section are dropped.
pub fn split(text: &str) -> std::collections::BTreeMap<Section, String> {
    let mut out = std::collections::BTreeMap::<Section, String>::new();
    for line in lines(text) {
        match line {
            Line::Start(s) => {
                out.entry(s).or_default();
            }
            Line::Body(Some(s), l) => {
                let e = out.entry(s).or_default();
                e.push_str(l);
                e.push('\n');
            }
            Line::Body(None, _) | Line::Unknown(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lines_and_echoes_agree() {
        for s in Section::ALL {
            assert_eq!(Section::from_name(s.name()), Some(*s));
            assert_eq!(s.line(), format!("{MARK}{}\n", s.name()));
            assert_eq!(s.echo(), format!("echo '{MARK}{}'", s.name()));
        }
    }

    #[test]
    fn lines_follow_their_section() {
        let text = "before\n#foobar:stat\na\r\n#foobar:what\nb\n#foobar:end\nc";
        let got: Vec<Line<'_>> = lines(text).collect();
        assert_eq!(
            got,
            vec![
                Line::Body(None, "before"),
                Line::Start(Section::Stat),
                Line::Body(Some(Section::Stat), "a"),
                Line::Unknown("what"),
                Line::Body(None, "b"),
                Line::Start(Section::End),
                Line::Body(Some(Section::End), "c"),
            ]
        );
        let raw: Vec<&str> = lines_raw("#foobar:stat\na\r\n").map(|(_, r)| r).collect();
        assert_eq!(raw, ["#foobar:stat\n", "a\r\n"]);
        let parts = split("#foobar:services\nx\n#foobar:nginx\n#foobar:services\ny\n");
        assert_eq!(parts[&Section::Services], "x\ny\n");
        assert_eq!(parts[&Section::Nginx], "");
    }
}
