//! `foobar graph` offline: the Mermaid drawing of the production inventory is pinned (insta),
//! and the dot output is laid out by Graphviz's own `dot -Tsvg` without error. Also
//! `verify --watch`'s options, which are checked before anything connects.

use std::io::Write;
use std::process::{Command, Stdio};

use assert_cmd::cargo::cargo_bin_cmd;

fn graph(args: &[&str]) -> String {
    let output = cargo_bin_cmd!("foobar")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        // Drawing reads only the inventory: no secret is needed.
        .env_remove("FOOBAR_REPLICATION_PASSWORD")
        .env_remove("FOOBAR_APP_DB_PASSWORD")
        .env_remove("FOOBAR_MYSQLD_EXPORTER_PASSWORD")
        .arg("graph")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "foobar graph {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn mermaid_of_the_production_inventory() {
    let text = graph(&["-i", "inventories/production.yml"]);
    insta::assert_snapshot!("production_mermaid", text);
}

#[test]
fn dot_output_is_accepted_by_graphviz() {
    for inv in ["inventories/production.yml", "inventories/lab.yml"] {
        let text = graph(&["--format", "dot", "-i", inv]);
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run Graphviz's dot (CI installs graphviz)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "dot -Tsvg rejects the graph of {inv}: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let svg = String::from_utf8_lossy(&out.stdout);
        assert!(
            svg.contains("<svg") && svg.contains("MySQL replica"),
            "{svg}"
        );
    }
}

#[test]
fn svg_format_runs_dot_and_says_so_when_it_is_missing() {
    let svg = graph(&["--format", "svg", "-i", "inventories/lab.yml"]);
    assert!(svg.contains("<svg"), "{svg}");
    let empty = tempfile::tempdir().unwrap();
    let output = cargo_bin_cmd!("foobar")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", empty.path())
        .args(["graph", "--format", "svg", "-i", "inventories/lab.yml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SVG needs Graphviz's `dot`, which is not installed")
            && stderr.contains("apt-get install graphviz"),
        "{stderr}"
    );
}

/// `verify --watch`'s options are checked before anything connects (the production inventory
/// names hosts that do not exist here).
#[test]
fn watch_interval_must_be_positive_and_needs_watch() {
    let run = |args: &[&str]| {
        let output = cargo_bin_cmd!("foobar")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["verify", "--watch", "--interval", "0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--interval 0 is not a positive number of seconds")
            && stderr.contains("e.g. --interval 5"),
        "{stderr}"
    );
    let (code, stderr) = run(&["verify", "--interval", "5"]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("--watch"), "{stderr}");
}
