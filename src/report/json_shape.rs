//! Test support, shared by the library's unit tests and tests/cli.rs (by `#[path]`): the
//! examples of docs/json.md, and where a document's shape differs from one.

use serde_json::Value;

/// The example of docs/json.md fenced as ` ```json NAME `.
pub fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md"))
        .expect("docs/json.md");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.strip_prefix("```json ") == Some(name) {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            return serde_json::from_str(&body.join("\n"))
                .unwrap_or_else(|e| panic!("docs/json.md example `{name}`: {e}"));
        }
    }
    panic!("docs/json.md has no `{name}` example")
}

/// Where `got` differs in shape from `want`: the same fields in every object, the same kind
/// of value (null stands for any), arrays compared by their first items, and maps keyed by
/// host name (`hosts`) by their first entries.
pub fn shape_differences(want: &Value, got: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(want, got, "", &mut out);
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(want: &Value, got: &Value, at: &str, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(w), Value::Object(g)) if at.ends_with(".hosts") => {
            if let (Some((_, wv)), Some((_, gv))) = (w.iter().next(), g.iter().next()) {
                walk(wv, gv, &format!("{at}.*"), out);
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            if wk != gk {
                out.push(format!("{at}: fields {wk:?} documented, {gk:?} printed"));
            }
            for (k, wv) in w {
                if let Some(gv) = g.get(k) {
                    walk(wv, gv, &format!("{at}.{k}"), out);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if let (Some(wv), Some(gv)) = (w.first(), g.first()) {
                walk(wv, gv, &format!("{at}[0]"), out);
            }
        }
        (w, g) if kind(w) != kind(g) => {
            out.push(format!("{at}: {} documented, {} printed", kind(w), kind(g)));
        }
        _ => {}
    }
}
