//! The shell functions foobar sends to hosts, written as real files (`sh/*.sh`, checked by
//! `shellcheck -s sh` in `scripts/test`) and loaded with `include_str!`. Every value reaches
//! them as a quoted positional argument; their text is foobar's own, so it goes into a
//! [`crate::shell::Script`] as code.
//!
//! What is sent is the file without its comment lines, blank lines and indentation (they cost
//! bytes on every host of every run, and the shell does not need them). So no line of a
//! here-document inside these files may start with `#` or rely on leading blanks.

use std::sync::LazyLock;

/// The text sent for a function file: no comments, no blank lines, no indentation.
fn sent(file: &str) -> String {
    file.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| [l, "\n"])
        .collect()
}

macro_rules! function_files {
    ($($(#[$doc:meta])* $name:ident => $file:literal,)*) => {
        $(
            $(#[$doc])*
            pub fn $name() -> &'static str {
                static TEXT: LazyLock<String> = LazyLock::new(|| sent(include_str!($file)));
                TEXT.as_str()
            }
        )*

        /// Every function file: its name and its text as written.
        pub const FILES: &[(&str, &str)] = &[$(($file, include_str!($file)),)*];
    };
}

function_files! {
    /// `print_lines FILE`.
    lines => "sh/lines.sh",
    /// `take_lock BREAK DIR HOLDER TEXT`, `locked_by HOLDER`.
    lock => "sh/lock.sh",
    /// `holds_lock HOLDER MARK`.
    unlock => "sh/unlock.sh",
    /// `any_path PATH...`, `stat_paths PATH...`, `hash_files FILE...`.
    facts => "sh/facts.sh",
    /// `read_holder HOLDER` (needs [`lines`]).
    holder => "sh/holder.sh",
    /// `send_bodies LIMIT SMALL SUM...`.
    gather => "sh/gather.sh",
    /// `table_digest FAMILY NAME`, `firewall_facts STATE TIMER FAMILY NAME`.
    firewall => "sh/firewall.sh",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sent_is_the_file_without_comments_or_indentation() {
        assert_eq!(
            sent("# what\n\nf() {\n  # why\n  echo hi\n}\n"),
            "f() {\necho hi\n}\n"
        );
        for (name, text) in FILES {
            assert!(!sent(text).contains("\n#"), "{name}");
        }
        assert!(lock().starts_with("take_lock() {\n"), "{}", lock());
    }

    /// Each file defines its functions and runs nothing: sourcing it prints nothing and
    /// succeeds.
    #[test]
    fn each_file_only_defines_functions() {
        for (name, text) in FILES {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(sent(text))
                .output()
                .unwrap();
            assert!(out.status.success(), "{name}");
            assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{name}");
        }
    }
}
