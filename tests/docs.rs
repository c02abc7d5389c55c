//! The documentation is checked like code:
//! - every `console` block in README.md and docs/ is run (trycmd) and must print what the
//!   page shows, exit code included;
//! - docs/reference/cli.md is generated from the clap definition and must be current;
//! - every relative link and `#anchor` in README.md, CHANGELOG.md and docs/ resolves.
//!
//! After a change of wording or flags, regenerate the pages and read the diff:
//! `TRYCMD=overwrite cargo test --test docs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn overwrite() -> bool {
    std::env::var("TRYCMD").is_ok_and(|v| v == "overwrite")
}

/// README.md, CHANGELOG.md and every `.md` under docs/, as paths relative to the root.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let root = root();
    let mut files = Vec::new();
    for top in ["README.md", "CHANGELOG.md"] {
        if root.join(top).exists() {
            files.push(root.join(top));
        }
    }
    walk(&root.join("docs"), &mut files);
    files
        .into_iter()
        .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Executed examples

/// The pages whose `console` blocks run. A page with none is not handed to trycmd, which
/// would take any fence without a language for a block to run.
fn pages_with_examples() -> Vec<PathBuf> {
    markdown_files()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(root().join(p))
                .unwrap()
                .lines()
                .any(|l| l.trim_start().starts_with("```console"))
        })
        .collect()
}

#[test]
fn every_fence_in_a_page_with_examples_names_its_language() {
    let mut bare = Vec::new();
    for page in pages_with_examples() {
        let text = std::fs::read_to_string(root().join(&page)).unwrap();
        let mut open = false;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim_start();
            if let Some(info) = t.strip_prefix("```") {
                if !open && info.trim().is_empty() {
                    bare.push(format!("{}:{}", page.display(), n + 1));
                }
                open = !open;
            }
        }
    }
    assert!(
        bare.is_empty(),
        "a fence without a language is run as a command block by trycmd; name it (text, yaml, sh, ...): {bare:?}"
    );
}

#[test]
fn console_examples_print_what_the_pages_show() {
    // The examples write here; each run starts from nothing, and runs from other checkouts
    // on this machine wait for each other.
    let lock = std::fs::File::create("/tmp/foobar-docs-example.lock").unwrap();
    lock.lock().unwrap();
    for dir in ["/tmp/foobar-docs-example", "/tmp/foobar-docs-render"] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let cases = trycmd::TestCases::new();
    cases
        .default_bin_name("foobar")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        // Pages may show a host-side step between foobar commands (a hand edit, a file read).
        .register_bin("sh", Path::new("/bin/sh"))
        .register_bin("cat", Path::new("/bin/cat"));
    for page in pages_with_examples() {
        cases.case(root().join(page));
    }
    cases.run();
}

// ---------------------------------------------------------------------------------------
// The generated command reference

const CLI_PAGE: &str = "docs/reference/cli.md";

fn cli_reference() -> String {
    let options = clap_markdown::MarkdownOptions::new()
        .title("Command-line reference".to_string())
        .show_footer(false);
    let body = clap_markdown::help_markdown_command_custom(&foobar::cli::command(), &options);
    // Help texts say `DIR/<host>/<path>`: outside code spans Markdown would take those for
    // HTML tags and show nothing.
    let body: String = body
        .lines()
        .map(|line| {
            let escaped: Vec<String> = line
                .split('`')
                .enumerate()
                .map(|(i, part)| {
                    if i % 2 == 0 {
                        part.replace('<', "&lt;").replace('>', "&gt;")
                    } else {
                        part.to_string()
                    }
                })
                .collect();
            escaped.join("`") + "\n"
        })
        .collect();
    format!(
        "<!-- Generated from the clap definition by `TRYCMD=overwrite cargo test --test docs`. Do not edit. -->\n\n{}\n\n{}\n",
        body.trim_end(),
        "Exit codes, common options and the stack's variables: [the reference](README.md#exit-codes)."
    )
}

#[test]
fn the_command_reference_is_generated_from_the_current_cli() {
    let want = cli_reference();
    let path = root().join(CLI_PAGE);
    if overwrite() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let diff = similar::TextDiff::from_lines(&have, &want)
            .unified_diff()
            .header(CLI_PAGE, "generated")
            .to_string();
        panic!(
            "{CLI_PAGE} is stale: regenerate it with `TRYCMD=overwrite cargo test --test docs`\n{diff}"
        );
    }
}

/// The exit-code table of the reference is [`foobar::error::EXIT_CODES`], as `foobar man`
/// prints it.
#[test]
fn the_exit_code_table_is_generated_from_the_code() {
    let path = root().join("docs/reference/README.md");
    let have = std::fs::read_to_string(&path).unwrap();
    let start = have
        .find("<!-- exit-codes:")
        .and_then(|i| have[i..].find('\n').map(|j| i + j + 1))
        .expect("docs/reference/README.md has no exit-codes marker");
    let end = have[start..]
        .find("<!-- end exit-codes -->")
        .map(|j| start + j)
        .expect("docs/reference/README.md has no end of the exit-codes table");
    let want = foobar::error::exit_codes_markdown();
    if overwrite() {
        let text = format!("{}{want}{}", &have[..start], &have[end..]);
        std::fs::write(&path, text).unwrap();
        return;
    }
    assert_eq!(
        &have[start..end],
        want,
        "the exit codes in docs/reference/README.md are stale: regenerate with `TRYCMD=overwrite cargo test --test docs`"
    );
}

// ---------------------------------------------------------------------------------------
// Links and anchors

/// GitHub's anchor for a heading: lower case, punctuation dropped (but `-` and `_`), spaces
/// to `-`; a repeated anchor gets `-1`, `-2`, ...
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

struct Page {
    anchors: BTreeSet<String>,
    /// (line, destination) of every link and image.
    links: Vec<(usize, String)>,
}

fn parse_page(text: &str) -> Page {
    let mut anchors = BTreeSet::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    for (event, range) in
        Parser::new_ext(text, Options::all() - Options::ENABLE_SMART_PUNCTUATION).into_offset_iter()
    {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let n = seen.entry(base.clone()).or_insert(0);
                anchors.insert(if *n == 0 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                });
                *n += 1;
            }
            Event::Text(t) | Event::Code(t) if heading.is_some() => {
                heading.as_mut().unwrap().push_str(&t);
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                links.push((line_of(range.start), dest_url.to_string()));
            }
            Event::Html(h) | Event::InlineHtml(h) => {
                // <a id="..."></a> and <img src="...">
                for (attr, is_anchor) in [("id=\"", true), ("name=\"", true), ("src=\"", false)] {
                    for part in h.split(attr).skip(1) {
                        if let Some(value) = part.split('"').next() {
                            if is_anchor {
                                anchors.insert(value.to_string());
                            } else {
                                links.push((line_of(range.start), value.to_string()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Page { anchors, links }
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("From Ansible"), "from-ansible");
    assert_eq!(slug("`foobar plan` and `show`"), "foobar-plan-and-show");
    assert_eq!(slug("Failover, reseed & rejoin"), "failover-reseed--rejoin");
    let page = parse_page("# A\n\n## A\n\n[x](#a-1) <a id=\"here\"></a>\n");
    assert!(page.anchors.contains("a") && page.anchors.contains("a-1"));
    assert!(page.anchors.contains("here"));
    assert_eq!(page.links, vec![(5, "#a-1".to_string())]);
}

fn broken_links() -> Vec<String> {
    let root = root();
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        let page = parse_page(&text);
        for (line, dest) in page.links {
            if dest.contains("://") || dest.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match dest.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (dest.as_str(), None),
            };
            let target = if path.is_empty() {
                root.join(&file)
            } else {
                root.join(file.parent().unwrap()).join(path)
            };
            let at = format!("{}:{line}: `{dest}`", file.display());
            if !target.exists() {
                broken.push(format!("{at}: no such file"));
                continue;
            }
            if let Some(fragment) = fragment
                && target.extension().is_some_and(|e| e == "md")
            {
                let anchors = parse_page(&std::fs::read_to_string(&target).unwrap()).anchors;
                if !anchors.contains(fragment) {
                    broken.push(format!("{at}: no heading or anchor `#{fragment}` there"));
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let broken = broken_links();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_sees_a_missing_file_and_a_missing_anchor() {
    let page = parse_page("[gone](nowhere.md) [bad](#no-such-heading)\n# Real\n");
    assert_eq!(page.links.len(), 2);
    assert!(!page.anchors.contains("no-such-heading"));
    assert!(page.anchors.contains("real"));
}

// ---------------------------------------------------------------------------------------
// The front door

#[test]
fn the_readme_stays_short_and_the_docs_carry_no_development_history() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines: move detail into docs/"
    );
    let mut found = Vec::new();
    for file in markdown_files() {
        if file == Path::new("CHANGELOG.md") {
            continue;
        }
        let text = std::fs::read_to_string(root().join(&file)).unwrap();
        for (n, line) in text.lines().enumerate() {
            if mentions_history(line) {
                found.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "development history belongs in commit bodies and CHANGELOG.md:\n{}",
        found.join("\n")
    );
}

/// "issue 18", "issue #17", "session 6": what the tracker and the work log call things.
fn mentions_history(line: &str) -> bool {
    let lower = line.to_lowercase();
    ["issue ", "issue #", "issues #", "session "]
        .iter()
        .any(|w| {
            lower.match_indices(w).any(|(i, _)| {
                lower[i + w.len()..]
                    .trim_start_matches('#')
                    .starts_with(|c: char| c.is_ascii_digit())
            })
        })
}

#[test]
fn history_is_recognised() {
    assert!(mentions_history("as issue 18 measured"));
    assert!(mentions_history("Prometheus on lb-01 (issue #17)"));
    assert!(mentions_history("since session 6"));
    assert!(!mentions_history("one SSH session for a changed host"));
}

#[test]
fn the_quickstart_shows_the_inventory_its_examples_run_on() {
    let page = std::fs::read_to_string(root().join("docs/quickstart.md")).unwrap();
    let inventory =
        std::fs::read_to_string(root().join("docs/examples/quickstart/inventory.yml")).unwrap();
    assert!(
        page.contains(&format!("```yaml\n{inventory}```")),
        "docs/quickstart.md must show docs/examples/quickstart/inventory.yml verbatim"
    );
}

#[test]
fn the_variables_reference_is_generated_from_the_stack_schema() {
    let schema = foobar::inventory::Schema::load(&root().join("playbooks/variables.yml")).unwrap();
    let want = schema.markdown();
    let path = root().join("docs/reference/variables.md");
    if overwrite() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/reference/variables.md is stale: regenerate it with `TRYCMD=overwrite cargo test --test docs`"
    );
}
