//! What a handler runs on a host: a service action or the author's own command.

use crate::shell::Script;

/// What a handler runs: a service action (names quoted) or the author's own command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerCommand<'a> {
    Service { action: &'static str, name: &'a str },
    Run(&'a str),
}

/// The command of a handler as script text.
pub fn handler_command(c: &HandlerCommand<'_>) -> Script {
    let mut s = Script::new();
    match c {
        HandlerCommand::Service { action, name } => {
            s.code("systemctl ").code(action).code(" -- ").word(name);
        }
        HandlerCommand::Run(cmd) => {
            s.trusted(cmd);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_service_names_are_words() {
        let s = handler_command(&HandlerCommand::Service {
            action: "restart",
            name: "x; id",
        });
        assert_eq!(s.to_string(), "systemctl restart -- 'x; id'");
    }
}
